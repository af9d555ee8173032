-- FerretDB 1.24 pushes a top-level equality filter down as `_jsonb -> 'field' @> value` (so that a
-- value also matches inside arrays, as in MongoDB), but the indexes `createIndexes` makes are
-- btree indexes on `_jsonb -> 'field'`, which cannot serve `@>`: every query, even by `_id`, is a
-- sequential scan of the collection's table. This mirrors each such btree index with a GIN index
-- (jsonb_path_ops, which serves `@>`) over the same expressions, when FerretDB creates it (event
-- trigger) and once for indexes made before (backfill below). Installed by devstack on every `up`;
-- idempotent. fastupdate is off: a pending list would be scanned linearly by every lookup.

CREATE OR REPLACE FUNCTION dvc_mirror_index_as_gin(btree_index oid) RETURNS void
LANGUAGE plpgsql AS $fn$
DECLARE
  definition text := pg_get_indexdef(btree_index);
  index_name text;
  keys text;
BEGIN
  IF definition NOT LIKE '% USING btree (%_jsonb%' THEN
    RETURN;
  END IF;
  SELECT relname INTO index_name FROM pg_class WHERE oid = btree_index;
  keys := substring(definition FROM ' USING btree \((.*)\)$');
  IF keys = '((_jsonb -> ''_id''::text))' THEN
    RETURN;  -- FerretDB's patch 0005 looks _id up with `=`, which its own btree index serves
  END IF;
  keys := regexp_replace(keys, ' DESC', '', 'g');
  keys := regexp_replace(keys, '(\(\(_jsonb [^)]*\)\))', '\1 jsonb_path_ops', 'g');
  EXECUTE format(
    'CREATE INDEX IF NOT EXISTS %I ON %s USING gin (%s) WITH (fastupdate = off)',
    left(index_name, 56) || '_gin',
    (SELECT indrelid::regclass::text FROM pg_index WHERE indexrelid = btree_index),
    keys
  );
END
$fn$;

CREATE OR REPLACE FUNCTION dvc_mirror_new_indexes_as_gin() RETURNS event_trigger
LANGUAGE plpgsql AS $fn$
DECLARE
  command record;
BEGIN
  FOR command IN SELECT objid FROM pg_event_trigger_ddl_commands()
                 WHERE command_tag = 'CREATE INDEX' AND object_type = 'index' LOOP
    PERFORM dvc_mirror_index_as_gin(command.objid);
  END LOOP;
END
$fn$;

DROP EVENT TRIGGER IF EXISTS dvc_mirror_new_indexes_as_gin;
CREATE EVENT TRIGGER dvc_mirror_new_indexes_as_gin ON ddl_command_end
  WHEN TAG IN ('CREATE INDEX') EXECUTE FUNCTION dvc_mirror_new_indexes_as_gin();

-- Backfill: btree indexes on documents that have no GIN mirror yet.
SELECT dvc_mirror_index_as_gin(i.indexrelid)
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_am am ON am.oid = c.relam
WHERE am.amname = 'btree'
  AND pg_get_indexdef(i.indexrelid) LIKE '%_jsonb%'
  AND NOT EXISTS (
    SELECT 1 FROM pg_class g
    WHERE g.relname = left(c.relname, 56) || '_gin' AND g.relnamespace = c.relnamespace
  );

-- Mirrors of _id indexes made before FerretDB's patch 0005: no query uses them any more.
DO $do$
DECLARE
  mirror regclass;
BEGIN
  FOR mirror IN
    SELECT i.indexrelid::regclass
    FROM pg_index i
    JOIN pg_class c ON c.oid = i.indexrelid
    JOIN pg_am am ON am.oid = c.relam
    WHERE am.amname = 'gin'
      AND pg_get_indexdef(i.indexrelid) LIKE '% USING gin (((_jsonb -> ''_id''::text)) jsonb_path_ops)%'
  LOOP
    EXECUTE format('DROP INDEX IF EXISTS %s', mirror);
  END LOOP;
END
$do$;
