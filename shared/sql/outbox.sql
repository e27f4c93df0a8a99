-- name: insert_outbox_event
-- Written in the caller's transaction, beside the change it describes.
INSERT INTO whatsapp_handler.outbox_events
       (id, aggregate_id, aggregate_type, event_type, event_version, payload, metadata,
        correlation_id)
VALUES (:id, :aggregate_id, :aggregate_type, :event_type, :event_version,
        CAST(:payload AS JSONB), CAST(:metadata AS JSONB), :correlation_id);

-- name: list_unpublished_events
-- RFC 6.1 query 3, as written: served by the partial index idx_outbox_unpublished.
SELECT id, aggregate_id, event_type, payload, correlation_id
  FROM whatsapp_handler.outbox_events
 WHERE published_at IS NULL
 ORDER BY created_at ASC
 LIMIT :limit;

-- name: list_events_for_aggregate
-- Debugging and audit: every event of one aggregate, oldest first (idx_outbox_aggregate).
SELECT id, aggregate_id, aggregate_type, event_type, event_version, payload, metadata,
       correlation_id, created_at, published_at
  FROM whatsapp_handler.outbox_events
 WHERE aggregate_id = :aggregate_id
 ORDER BY created_at, id;
