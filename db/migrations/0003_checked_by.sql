-- Which loader (schema and jobs version) checked the last good spec. A file whose content hash and
-- loader both match the stored ones is not parsed again: its stored spec is used as is.
ALTER TABLE jobs ADD COLUMN checked_by TEXT;
