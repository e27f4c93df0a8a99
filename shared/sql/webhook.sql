-- name: lock_and_touch_user
-- Every webhook: the user row (the truth) for this number, locked until the commit so two
-- messages of one user at once take turns instead of interleaving (idx_users_phone).
-- The same statement records the message as activity (RFC 3.1.5, fed to the GDPR
-- retention query) unless the user is blocked: one round trip instead of two.
-- last_active_at is the value before this touch: the time of the last message handled,
-- which the conversation state saved by that message carries (its freshness check).
-- The preferences the conversation needs (STATUS with notifications off, the reply
-- language) come in the same round trip; a user without a preferences row gets NULLs.
WITH locked AS (
    SELECT id, verified_at, blocked_at, terms_version, anonymized_at, last_active_at
      FROM whatsapp_handler.users
     WHERE phone_number = :phone_number
       FOR UPDATE
), touched AS (
    UPDATE whatsapp_handler.users AS users
       SET last_active_at = :now
      FROM locked
     WHERE users.id = locked.id AND locked.blocked_at IS NULL
)
SELECT locked.id, locked.verified_at, locked.blocked_at, locked.terms_version,
       locked.anonymized_at, locked.last_active_at,
       prefs.notification_enabled, prefs.language
  FROM locked
  LEFT JOIN whatsapp_handler.user_preferences AS prefs ON prefs.user_id = locked.id;
