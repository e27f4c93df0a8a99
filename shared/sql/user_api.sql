-- name: api_find_user
-- GET /api/v1/users/{id} (RFC 4.1): the primary key; an erased user is still found by id.
SELECT id, phone_number, verified_at IS NOT NULL AS verified, anonymized_at
  FROM whatsapp_handler.users
 WHERE id = :user_id;

-- name: api_find_user_preferences
-- GET /api/v1/users/{id}/preferences: one round trip tells "no such user", "erased" and
-- "preferences" apart (primary key, then one probe of idx_user_prefs_user).
SELECT u.id AS user_id, u.anonymized_at, p.user_id IS NOT NULL AS has_preferences,
       p.notification_enabled, p.language, p.timezone, p.delay_threshold_minutes,
       p.auto_claim_enabled, p.updated_at
  FROM whatsapp_handler.users AS u
  LEFT JOIN whatsapp_handler.user_preferences AS p ON p.user_id = u.id
 WHERE u.id = :user_id;
