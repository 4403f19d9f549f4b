-- Organisation-relationship transfers 组织关系转接 (sqlite). Keep in step with the other
-- engine's 0014.

-- An organisation may pass transfer steps at once 自动审核.
ALTER TABLE orgs ADD COLUMN transfer_auto_approve INTEGER NOT NULL DEFAULT 0;

-- Contacts remembered per organisation and prefilled on the next transfer form: the source
-- branch, its basic committee, the receiving side.
CREATE TABLE transfer_contacts (
    org_id TEXT PRIMARY KEY,
    contact TEXT NOT NULL DEFAULT '',
    phone TEXT NOT NULL DEFAULT '',
    fax TEXT NOT NULL DEFAULT '',
    postcode TEXT NOT NULL DEFAULT '',
    address TEXT NOT NULL DEFAULT '',
    updated_at TEXT NOT NULL
);

-- One row per transfer. `data` (sealed JSON) carries the ID number, contacts, dues and, for an
-- inbound registration, the member's record to enter on receipt. The path lives in
-- transfer_nodes; `current_step` is the index of the node whose turn it is and
-- `current_org_code` that node's code (the inbox reads it). `source_end`: the index of the last
-- node of the source side (the letter is issued when it approves; -1 inbound from outside).
CREATE TABLE transfers (
    id TEXT PRIMARY KEY,
    direction TEXT NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    member_id TEXT,
    member_name TEXT NOT NULL,
    id_number_idx TEXT NOT NULL,
    data TEXT NOT NULL,
    from_org_id TEXT,
    from_org_code TEXT,
    from_name TEXT NOT NULL,
    to_org_id TEXT,
    to_org_code TEXT,
    to_name TEXT NOT NULL,
    reason TEXT NOT NULL,
    transfer_date TEXT NOT NULL,
    current_step INTEGER NOT NULL,
    current_org_code TEXT NOT NULL,
    source_end INTEGER NOT NULL,
    path_len INTEGER NOT NULL,
    step_since TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 0,
    created_by TEXT NOT NULL,
    created_by_name TEXT NOT NULL,
    created_org_code TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    finished_at TEXT
);
-- One open transfer per member and per person (ID number): a second one is refused.
CREATE UNIQUE INDEX transfers_open_member ON transfers (member_id) WHERE state IN ('active', 'returned') AND member_id IS NOT NULL;
CREATE UNIQUE INDEX transfers_open_person ON transfers (id_number_idx) WHERE state IN ('active', 'returned');
CREATE INDEX transfers_current ON transfers (current_org_code, state);
CREATE INDEX transfers_from ON transfers (from_org_code, created_at);
CREATE INDEX transfers_to ON transfers (to_org_code, created_at);
CREATE INDEX transfers_created_org ON transfers (created_org_code, created_at);
CREATE INDEX transfers_person ON transfers (id_number_idx);

-- The path 转接路径, node by node. state: waiting | current | approved | auto | received.
CREATE TABLE transfer_nodes (
    transfer_id TEXT NOT NULL REFERENCES transfers(id),
    seq INTEGER NOT NULL,
    org_id TEXT NOT NULL,
    org_code TEXT NOT NULL,
    org_name TEXT NOT NULL,
    auto INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'waiting',
    acted_at TEXT,
    PRIMARY KEY (transfer_id, seq)
);
CREATE INDEX transfer_nodes_org ON transfer_nodes (org_code, transfer_id);

-- The trail: every action with the node it came from and the node it went to.
CREATE TABLE transfer_steps (
    id TEXT PRIMARY KEY,
    transfer_id TEXT NOT NULL REFERENCES transfers(id),
    -- The step's place in the trail (1, 2, …: times repeat within a second).
    n INTEGER NOT NULL,
    action TEXT NOT NULL,
    from_node TEXT NOT NULL DEFAULT '',
    to_node TEXT NOT NULL DEFAULT '',
    opinion TEXT NOT NULL DEFAULT '',
    actor_account_id TEXT NOT NULL,
    actor_name TEXT NOT NULL,
    actor_org_name TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE UNIQUE INDEX transfer_steps_transfer ON transfer_steps (transfer_id, n);
