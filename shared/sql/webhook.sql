-- name: lock_user_by_phone
-- Every webhook: the user row (the truth) for this number, locked until the commit so two
-- messages of one user at once take turns instead of interleaving (idx_users_phone).
SELECT id, verified_at, blocked_at, terms_version, anonymized_at
  FROM whatsapp_handler.users
 WHERE phone_number = :phone_number
   FOR UPDATE;
