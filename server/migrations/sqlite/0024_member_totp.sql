-- Members' authenticators 身份验证器 (sqlite). Keep in step with the other engine's 0024.
-- A member may enrol a TOTP authenticator on 个人专区 and then sign in with its code instead
-- of an SMS code; the secret is sealed (column member_accounts.totp_secret) and the last step
-- used is kept so that no code signs in twice (the administrators' replay rule).
ALTER TABLE member_accounts ADD COLUMN totp_secret TEXT;
ALTER TABLE member_accounts ADD COLUMN totp_confirmed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE member_accounts ADD COLUMN last_totp_step INTEGER NOT NULL DEFAULT 0;
