-- The dashboard's sign-in: accounts (a customer's email and argon2id password hash), browser
-- sessions (the SHA-256 of the cookie's token, never the token) and sign-up invites.

CREATE TABLE accounts (
    customer_id   TEXT PRIMARY KEY REFERENCES customers(id) ON DELETE CASCADE,
    -- Stored lower-cased and trimmed: one account per address whatever its spelling.
    email         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

CREATE TABLE sessions (
    id_hash     TEXT PRIMARY KEY,
    -- NULL: an operator's session (signed in with the admin token).
    customer_id TEXT REFERENCES customers(id) ON DELETE CASCADE,
    operator    INTEGER NOT NULL DEFAULT 0,
    -- An operator's session: the SHA-256 of the admin token it was opened with (a new token
    -- ends it).
    token_digest TEXT,
    csrf_token  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX sessions_customer ON sessions(customer_id);
CREATE INDEX sessions_expiry ON sessions(expires_at);

CREATE TABLE invites (
    email      TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    used_at    INTEGER
);

-- The dashboard's job list across templates, newest first.
CREATE INDEX jobs_customer_all ON jobs(customer_id, id);

-- API keys as the dashboard lists them: the key's last four characters (the key itself is
-- shown once) and when it was last used (written at most every few seconds per key).
ALTER TABLE api_keys ADD COLUMN last_four TEXT;
ALTER TABLE api_keys ADD COLUMN last_used_at INTEGER;
ALTER TABLE jobs ADD COLUMN retry_of TEXT; -- the job this one retries (POST .../retry)
