-- Video generations (a provider's long-running operation: Veo) run through the render queue as
-- kind 'generation' (SQLite's 0013).
ALTER TABLE renders DROP CONSTRAINT renders_kind_check;
ALTER TABLE renders ADD CONSTRAINT renders_kind_check CHECK (kind IN ('spec', 'remotion', 'generation'));
