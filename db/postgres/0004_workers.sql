-- Workers on every node: the leader records the runs it claims with no owner, and any node whose
-- labels fit takes them. Each run keeps the spec it was claimed with, so the node that executes it
-- runs that version whatever its own files say.

ALTER TABLE runs ADD COLUMN spec_json TEXT;

-- The queue the workers take from: runs in flight that no node has taken yet.
CREATE INDEX runs_waiting_for_a_node ON runs (due_at) WHERE owner = '' AND status IN ('queued', 'running');
