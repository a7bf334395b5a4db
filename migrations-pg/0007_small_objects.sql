-- Objects of the local store of at most 16 KiB (`storage/small_objects.rs`): a row here instead
-- of a file, as on SQLite (migration 0014 there).
CREATE TABLE small_objects (
    key        TEXT COLLATE "C" PRIMARY KEY,
    body       BYTEA NOT NULL,
    updated_at BIGINT NOT NULL
);
