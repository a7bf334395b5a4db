-- The W3C `traceparent` of the span that created the job (the API request, or the parent
-- job's capability call): whichever worker claims the job continues that trace.
ALTER TABLE jobs ADD COLUMN traceparent TEXT;
