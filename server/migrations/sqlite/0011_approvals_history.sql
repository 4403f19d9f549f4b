-- Applications and approvals 维护审批, the history of members who left 历史党员 and the ledger
-- of membership changes (sqlite). Keep in step with the other engine's 0011.

-- One row per application. The submitted data (JSON, may carry an ID number and phones) is
-- sealed like the members' personal fields. The approver is the nearest organisation in the
-- member's chain with the approval tier the kind needs (SPEC §4, §5).
CREATE TABLE applications (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    member_id TEXT,
    member_name TEXT NOT NULL,
    subject_org_code TEXT NOT NULL,
    subject_org_name TEXT NOT NULL,
    applicant_account_id TEXT NOT NULL,
    applicant_name TEXT NOT NULL,
    applicant_org_id TEXT NOT NULL,
    applicant_org_code TEXT NOT NULL,
    applicant_org_name TEXT NOT NULL,
    approver_org_id TEXT NOT NULL,
    approver_org_code TEXT NOT NULL,
    approver_org_name TEXT NOT NULL,
    approver_tier INTEGER NOT NULL,
    data TEXT NOT NULL,
    attachments TEXT NOT NULL DEFAULT '[]',
    submitted_at TEXT NOT NULL,
    decided_at TEXT,
    decided_by TEXT
);
-- At most one pending application per member: a second one waits for the first decision.
CREATE UNIQUE INDEX applications_pending_member ON applications (member_id) WHERE state = 'pending' AND member_id IS NOT NULL;
CREATE INDEX applications_approver ON applications (approver_org_code, state, submitted_at);
CREATE INDEX applications_applicant ON applications (applicant_org_code, state, submitted_at);
CREATE INDEX applications_subject ON applications (subject_org_code, state);

-- The trail of opinions 审核意见: submission, approval, rejection, withdrawal.
CREATE TABLE application_steps (
    id TEXT PRIMARY KEY,
    application_id TEXT NOT NULL REFERENCES applications(id),
    action TEXT NOT NULL,
    opinion TEXT NOT NULL DEFAULT '',
    actor_account_id TEXT NOT NULL,
    actor_name TEXT NOT NULL,
    actor_org_name TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX application_steps_app ON application_steps (application_id, at);

-- Members who left the living database, every field kept (sealed values stay sealed with the
-- members' columns as associated data), with the reason and date. A recovered record stays,
-- marked, as the trail of what happened.
CREATE TABLE member_history (
    history_id TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    left_on TEXT NOT NULL,
    remark TEXT NOT NULL DEFAULT '',
    application_id TEXT,
    recorded_at TEXT NOT NULL,
    recorded_by TEXT NOT NULL,
    recovered_at TEXT,
    phone_cancelled_at TEXT,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    id_number TEXT NOT NULL,
    sex TEXT NOT NULL,
    ethnicity TEXT NOT NULL,
    birth_date TEXT NOT NULL,
    education TEXT NOT NULL,
    category TEXT NOT NULL,
    branch_id TEXT NOT NULL,
    org_code TEXT NOT NULL,
    joined_on TEXT NOT NULL,
    full_on TEXT,
    job TEXT NOT NULL,
    phone TEXT NOT NULL DEFAULT '',
    address TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT 'normal',
    lost_contact INTEGER NOT NULL DEFAULT 0,
    lost_contact_on TEXT,
    floating INTEGER NOT NULL DEFAULT 0,
    floating_to TEXT,
    registered_phone TEXT,
    origin TEXT NOT NULL DEFAULT '',
    title TEXT NOT NULL DEFAULT '',
    new_social_stratum TEXT NOT NULL DEFAULT '',
    in_transfer INTEGER NOT NULL DEFAULT 0,
    completeness INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    id_number_idx TEXT,
    registered_phone_idx TEXT,
    sort_pinyin TEXT,
    sort_strokes TEXT,
    id_suffix_idx TEXT
);
CREATE INDEX member_history_list ON member_history (reason, org_code, sort_pinyin);
CREATE INDEX member_history_member ON member_history (id);
CREATE INDEX member_history_registered_phone ON member_history (registered_phone_idx);

-- The ledger of membership changes that statistics read: a recovery is a correction, not an
-- addition (SPEC §4).
CREATE TABLE member_changes (
    id TEXT PRIMARY KEY,
    member_id TEXT NOT NULL,
    org_code TEXT NOT NULL,
    change TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    counts_as TEXT NOT NULL,
    application_id TEXT,
    at TEXT NOT NULL
);
CREATE INDEX member_changes_org ON member_changes (org_code, at);

-- Verification codes sent to a member's new registered phone 注册手机号变更: single use.
CREATE TABLE member_phone_codes (
    id TEXT PRIMARY KEY,
    member_id TEXT NOT NULL,
    phone_idx TEXT NOT NULL,
    code_hash TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at TEXT
);
CREATE INDEX member_phone_codes_member ON member_phone_codes (member_id, created_at);
