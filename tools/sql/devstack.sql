-- name: dev_list_unpublished_events_since
-- `make dev` without the Pub/Sub emulator: the outbox rows the relay would publish, from
-- the sink's cursor on, in creation order. Read-only: nothing is marked published.
SELECT id, aggregate_id, aggregate_type, event_type, event_version, payload,
       correlation_id, created_at
  FROM whatsapp_handler.outbox_events
 WHERE published_at IS NULL
   AND created_at >= :since
 ORDER BY created_at, id
 LIMIT :limit;
