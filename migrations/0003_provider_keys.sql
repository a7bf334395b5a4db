-- Customer-owned AI provider keys and the SQLite key queue (spec "SQLite-Backed AI Key
-- Queue"): keys, their live leases, their usage and error events, the models they serve.
-- Times are unix milliseconds.

CREATE TABLE customer_provider_keys (
    id                TEXT PRIMARY KEY,
    -- NULL: a platform key (from the operator's environment), used only for customers with
    -- no usable key of their own for the provider, and recorded as such.
    customer_id       TEXT REFERENCES customers(id) ON DELETE CASCADE,
    provider          TEXT NOT NULL,
    label             TEXT,
    -- `v1:` + base64(nonce ‖ XChaCha20-Poly1305 ciphertext), the key id as associated data:
    -- the plaintext is never stored, and a ciphertext moved to another row does not decrypt.
    encrypted_secret  TEXT NOT NULL,
    -- Last four characters, so people can tell keys apart in lists.
    secret_last4      TEXT NOT NULL,
    -- active | paused | invalid
    status            TEXT NOT NULL DEFAULT 'active',
    weight            INTEGER NOT NULL DEFAULT 1,
    last_used_at      INTEGER,
    cooldown_until    INTEGER,
    disabled_reason   TEXT,
    -- customer | environment | platform
    source            TEXT NOT NULL DEFAULT 'customer',
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);
CREATE INDEX customer_provider_keys_pick ON customer_provider_keys(customer_id, provider, status);

-- At most one live lease per key (the primary key); an expired row is replaced by the next
-- lease, so a crashed worker's key comes back on its own.
CREATE TABLE provider_key_leases (
    key_id       TEXT PRIMARY KEY REFERENCES customer_provider_keys(id) ON DELETE CASCADE,
    lease_token  TEXT NOT NULL,
    worker_id    TEXT NOT NULL,
    job_id       TEXT NOT NULL,
    leased_at    INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
);

CREATE TABLE provider_key_usage_events (
    id             INTEGER PRIMARY KEY,
    key_id         TEXT NOT NULL,
    job_id         TEXT NOT NULL,
    provider       TEXT NOT NULL,
    model          TEXT,
    -- success | rate_limit | quota_exhausted | auth_error | upstream_error | bad_request
    event_type     TEXT NOT NULL,
    input_tokens   INTEGER,
    output_tokens  INTEGER,
    cost_usd       REAL,
    status_code    INTEGER,
    detail         TEXT,
    created_at     INTEGER NOT NULL
);
CREATE INDEX provider_key_usage_key ON provider_key_usage_events(key_id, created_at);

-- A key with rows here serves only these models; a key without rows serves every model.
CREATE TABLE provider_key_capabilities (
    key_id  TEXT NOT NULL REFERENCES customer_provider_keys(id) ON DELETE CASCADE,
    model   TEXT NOT NULL,
    PRIMARY KEY (key_id, model)
);
