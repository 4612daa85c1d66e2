// Names the calling thread, as shown by `top -H`, `ps -L` and debuggers.
#pragma once

#include <pthread.h>

#include <string>

namespace timer::util {

// Linux keeps at most 15 characters; longer names are cut.
inline void SetThreadName(const std::string& name) {
  pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
}

}  // namespace timer::util
