// secret_file: the one rule every provider in this tree reads an operator's
// secret file by (the http provider's credentials, an S3 endpoint's secret
// key or credentials file, an SFTP endpoint's private key).
//
// A secret file is a regular file (a symbolic link is refused, not
// followed), owned by the user timerd runs as or by root (as timerd's own
// key files: services/timerd/util/file_trust.h), that neither its group nor
// others may read, write or execute (chmod 600), of at most 64 KiB. Its
// content never appears in an error; its path does (the operator wrote it).
#pragma once

#include <string>

#include "provider_support.h"

namespace timer::plugins {

inline constexpr size_t kMaxSecretFileBytes = 64 * 1024;

// Checks the secret file at `path` and, when `content` is not null, reads it
// whole into *content (exactly its bytes: a caller that wants a trailing
// newline gone trims it). `field` names the configuration key in every
// error. A file that cannot be opened, is not a regular file or is too large
// is INVALID_ARGUMENT; one owned by another user or open to group or others
// is PERMISSION_DENIED; a read error is INVALID_ARGUMENT too.
Err ReadSecretFile(const std::string& field, const std::string& path,
                   std::string* content);

}  // namespace timer::plugins
