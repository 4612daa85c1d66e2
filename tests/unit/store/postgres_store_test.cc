// PostgreSQL-only tests of PostgresStore (store/postgres_store.h).
#include "gtest/gtest.h"
