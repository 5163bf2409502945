-- consumer-auth service: consumers, the five credential kinds (Kong's tables and columns), and
-- the change log. Column lists must match service/src/entity/mod.rs (a test checks it).
-- Never edit a migration that shipped (sqlx stores its checksum): add the next one.

CREATE TABLE consumers (
    "id" TEXT PRIMARY KEY,
    "created_at" INTEGER NOT NULL,
    "updated_at" INTEGER NOT NULL,
    "username" TEXT UNIQUE,
    "custom_id" TEXT UNIQUE,
    "tags" TEXT
);

CREATE TABLE keyauth_credentials (
    "id" TEXT PRIMARY KEY,
    "created_at" INTEGER NOT NULL,
    "consumer_id" TEXT NOT NULL REFERENCES consumers ("id") ON DELETE CASCADE,
    "key" TEXT NOT NULL UNIQUE,
    "expires_at" INTEGER,
    "tags" TEXT
);
CREATE INDEX keyauth_credentials_consumer_id ON keyauth_credentials ("consumer_id");

CREATE TABLE basicauth_credentials (
    "id" TEXT PRIMARY KEY,
    "created_at" INTEGER NOT NULL,
    "consumer_id" TEXT NOT NULL REFERENCES consumers ("id") ON DELETE CASCADE,
    "username" TEXT NOT NULL UNIQUE,
    "password" TEXT NOT NULL,
    "tags" TEXT
);
CREATE INDEX basicauth_credentials_consumer_id ON basicauth_credentials ("consumer_id");

CREATE TABLE hmacauth_credentials (
    "id" TEXT PRIMARY KEY,
    "created_at" INTEGER NOT NULL,
    "consumer_id" TEXT NOT NULL REFERENCES consumers ("id") ON DELETE CASCADE,
    "username" TEXT NOT NULL UNIQUE,
    "secret" TEXT NOT NULL,
    "tags" TEXT
);
CREATE INDEX hmacauth_credentials_consumer_id ON hmacauth_credentials ("consumer_id");

CREATE TABLE jwt_secrets (
    "id" TEXT PRIMARY KEY,
    "created_at" INTEGER NOT NULL,
    "consumer_id" TEXT NOT NULL REFERENCES consumers ("id") ON DELETE CASCADE,
    "key" TEXT NOT NULL UNIQUE,
    "secret" TEXT,
    "algorithm" TEXT NOT NULL,
    "rsa_public_key" TEXT,
    "tags" TEXT
);
CREATE INDEX jwt_secrets_consumer_id ON jwt_secrets ("consumer_id");

CREATE TABLE acls (
    "id" TEXT PRIMARY KEY,
    "created_at" INTEGER NOT NULL,
    "consumer_id" TEXT NOT NULL REFERENCES consumers ("id") ON DELETE CASCADE,
    "group" TEXT NOT NULL,
    "tags" TEXT,
    UNIQUE ("consumer_id", "group")
);

-- The change log: one row per committed change, versions in commit order. The version comes
-- from this one-row counter, updated in the change's own transaction: its row lock is held
-- until commit, so no version becomes visible before a lower one.
CREATE TABLE change_version (
    "one" INTEGER PRIMARY KEY CHECK ("one" = 1),
    "version" INTEGER NOT NULL
);
INSERT INTO change_version ("one", "version") VALUES (1, 0);

CREATE TABLE change_log (
    "version" INTEGER PRIMARY KEY,
    "entity" TEXT NOT NULL,
    "entity_id" TEXT NOT NULL,
    "consumer_id" TEXT,
    "op" TEXT NOT NULL,
    "at" INTEGER NOT NULL
);
