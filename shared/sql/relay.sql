-- name: bound_relay_transaction
-- A relay that dies mid-batch without closing its connection (a lost instance) must not
-- keep its rows locked for long: the server ends the session once it idles this long.
SELECT set_config('idle_in_transaction_session_timeout', :timeout_ms, true);

-- name: take_relay_batch
-- The relay's batch: due, undelivered, not dead-lettered events, oldest first, locked with
-- SKIP LOCKED so concurrent relays take disjoint rows (narrow rows are sorted; payloads
-- are read for the taken ones only). An event behind a sibling (same aggregate) that is
-- backing off is not taken: it waits its turn instead of filling the batch. earlier_pending
-- counts the earlier siblings still owed to Pub/Sub; the relay publishes an event only
-- when all of them are in its own batch (shared/services/relay.py).
WITH backing_off AS MATERIALIZED (
    SELECT aggregate_id, min(created_at) AS since
      FROM whatsapp_handler.outbox_events
     WHERE published_at IS NULL
       AND dead_lettered_at IS NULL
       AND next_attempt_at > :now
     GROUP BY aggregate_id
), taken AS (
    SELECT e.id
      FROM whatsapp_handler.outbox_events e
     WHERE e.published_at IS NULL
       AND e.dead_lettered_at IS NULL
       AND (e.next_attempt_at IS NULL OR e.next_attempt_at <= :now)
       AND NOT EXISTS (SELECT 1 FROM backing_off b
                        WHERE b.aggregate_id = e.aggregate_id AND b.since <= e.created_at)
     ORDER BY e.created_at, e.id
     LIMIT :batch_size
       FOR UPDATE OF e SKIP LOCKED
)
SELECT e.id, e.aggregate_id, e.aggregate_type, e.event_type, e.event_version, e.payload,
       e.correlation_id, e.created_at, e.attempts,
       (SELECT count(*)
          FROM whatsapp_handler.outbox_events p
         WHERE p.aggregate_id = e.aggregate_id
           AND p.aggregate_type = e.aggregate_type
           AND p.published_at IS NULL
           AND p.dead_lettered_at IS NULL
           AND (p.created_at, p.id) < (e.created_at, e.id)) AS earlier_pending
  FROM whatsapp_handler.outbox_events e
  JOIN taken USING (id)
 ORDER BY e.created_at, e.id;

-- name: mark_events_published
-- Only the events whose publish Pub/Sub acknowledged, in the batch's transaction.
UPDATE whatsapp_handler.outbox_events
   SET published_at = :now, next_attempt_at = NULL
 WHERE id = ANY(CAST(:ids AS UUID[]));

-- name: record_publish_failure
-- One failed attempt: counted, explained, and either scheduled again or dead-lettered.
UPDATE whatsapp_handler.outbox_events
   SET attempts = :attempts,
       last_error = :last_error,
       next_attempt_at = :next_attempt_at,
       dead_lettered_at = :dead_lettered_at
 WHERE id = :id;

-- name: outbox_backlog
-- Reported every run: events still owed to Pub/Sub (idx_outbox_unpublished) and the oldest.
SELECT count(*) AS pending, min(created_at) AS oldest_created_at
  FROM whatsapp_handler.outbox_events
 WHERE published_at IS NULL
   AND dead_lettered_at IS NULL;

-- name: count_dead_letters
-- Dead-lettered events are kept and never retried automatically; reported every run.
SELECT count(*) AS dead_lettered
  FROM whatsapp_handler.outbox_events
 WHERE published_at IS NULL
   AND dead_lettered_at IS NOT NULL;

-- name: list_dead_letters
-- The operator's view of dead-lettered events (whatsapp-handler dead-letters list).
SELECT id, aggregate_type, aggregate_id, event_type, attempts, last_error, created_at,
       dead_lettered_at
  FROM whatsapp_handler.outbox_events
 WHERE published_at IS NULL
   AND dead_lettered_at IS NOT NULL
 ORDER BY dead_lettered_at, created_at, id
 LIMIT :limit;

-- name: requeue_dead_letter
-- An operator sends one dead-lettered event back to the relay with a fresh attempt budget.
UPDATE whatsapp_handler.outbox_events
   SET dead_lettered_at = NULL, attempts = 0, next_attempt_at = NULL
 WHERE id = :id
   AND published_at IS NULL
   AND dead_lettered_at IS NOT NULL
RETURNING id;

-- name: requeue_all_dead_letters
-- Every dead-lettered event back to the relay (after fixing what made them fail).
UPDATE whatsapp_handler.outbox_events
   SET dead_lettered_at = NULL, attempts = 0, next_attempt_at = NULL
 WHERE published_at IS NULL
   AND dead_lettered_at IS NOT NULL
RETURNING id;

-- name: purge_published_events
-- RFC 7.1 retention in bounded batches: only events published before the cutoff, never an
-- undelivered one; SKIP LOCKED so a purge never waits on (or blocks) the relay for long.
WITH doomed AS (
    SELECT id
      FROM whatsapp_handler.outbox_events
     WHERE published_at IS NOT NULL
       AND published_at < :cutoff
     LIMIT :batch_size
       FOR UPDATE SKIP LOCKED
)
DELETE FROM whatsapp_handler.outbox_events e
 USING doomed
 WHERE e.id = doomed.id;

-- name: count_purgeable_events
-- purge --dry-run: what a purge with this cutoff would delete, and the oldest of it.
SELECT count(*) AS purgeable, min(published_at) AS oldest_published_at
  FROM whatsapp_handler.outbox_events
 WHERE published_at IS NOT NULL
   AND published_at < :cutoff;
