#include "secret_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace timer::plugins {

Err ReadSecretFile(const std::string& field, const std::string& path,
                   std::string* content) {
  // O_NONBLOCK: a FIFO put in the file's place does not hang the open.
  const int fd =
      ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    if (errno == ELOOP) {
      return InvalidArgument(field + ": " + path +
                             " is a symbolic link; name the file itself");
    }
    return InvalidArgument(field + ": cannot open " + path + ": " + std::strerror(errno));
  }
  struct stat st;
  Err err;
  if (::fstat(fd, &st) != 0) {
    err = InvalidArgument(field + ": cannot stat " + path + ": " + std::strerror(errno));
  } else if (!S_ISREG(st.st_mode)) {
    err = InvalidArgument(field + ": " + path + " is not a regular file");
  } else if (st.st_uid != ::geteuid() && st.st_uid != 0) {
    err = PermissionDenied(field + ": " + path +
                           " must be owned by the user timerd runs as (uid " +
                           std::to_string(::geteuid()) + ") or root");
  } else if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    err = PermissionDenied(field + ": " + path +
                           " may be read or written by other users; chmod 600 it");
  } else if (st.st_size > static_cast<off_t>(kMaxSecretFileBytes)) {
    err = InvalidArgument(field + ": " + path + " is larger than 64 KiB");
  } else if (content != nullptr) {
    content->assign(static_cast<size_t>(st.st_size), '\0');
    size_t done = 0;
    while (done < content->size()) {
      const ssize_t n = ::read(fd, content->data() + done, content->size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        err = InvalidArgument(field + ": cannot read " + path + ": " +
                              std::strerror(errno));
        break;
      }
      if (n == 0) break;  // shrank since fstat: what is there
      done += static_cast<size_t>(n);
    }
    content->resize(err.ok() ? done : 0);
  }
  ::close(fd);
  return err;
}

}  // namespace timer::plugins
