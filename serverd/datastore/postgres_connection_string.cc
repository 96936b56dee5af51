// Apart from the store: serverd's config check reads a connection string with libpq's own parser
// and nothing else of the store.
#include <libpq-fe.h>

#include "serverd/datastore/postgres_datastore.h"

namespace sigil::serverd {

Status CheckPostgresConnectionString(const std::string& connection_string) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(connection_string.c_str(), &error);
  if (options == nullptr) {
    std::string message = error != nullptr ? error : "cannot be read";
    PQfreemem(error);
    while (!message.empty() && message.back() == '\n') message.pop_back();
    return InvalidArgumentError("cannot be read: " + message);
  }
  bool has_password = false;
  for (PQconninfoOption* option = options; option->keyword != nullptr; ++option) {
    if (std::string_view(option->keyword) == "password" && option->val != nullptr && option->val[0] != '\0') {
      has_password = true;
    }
  }
  PQconninfoFree(options);
  if (has_password) {
    return InvalidArgumentError("holds a password; put it in a file named by password_file, or in PGPASSWORD");
  }
  return Status::Ok();
}

}  // namespace sigil::serverd
