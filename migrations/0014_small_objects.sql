-- Objects of the local store of at most 16 KiB (`storage/small_objects.rs`): a row here instead
-- of a file. A job's small artifact then commits with the job's other writes, and costs no
-- inode, folder or rename on the object disk.
CREATE TABLE small_objects (
    key TEXT PRIMARY KEY,
    body BLOB NOT NULL,
    updated_at INTEGER NOT NULL
);
