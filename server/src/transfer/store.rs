//! Transfers in the database. Every change is one transaction with its trail step and its audit
//! record, and moves the row by a conditional `UPDATE … WHERE version = $v`: of concurrent or
//! repeated actions exactly one changes the transfer, the others are answered 409. The member
//! moves (branch, code, lock) in the same transaction as the receipt, so a crash between any two
//! steps leaves it in exactly one place.

use sqlx::{Any, Executor};

use super::rules::{self, Direction, PathOrg, PathPlan, State};
use super::{Contact, Contacts, NodeView, StepView, TransferData, TransferRow, TRANSFER_COLUMNS};
use crate::access::{Actor, Allowed};
use crate::approval::history::{self, Leaving};
use crate::audit::{self, Event, Who};
use crate::crypto::{self, Column};
use crate::db::{new_id, now_rfc3339, today, Tx};
use crate::error::{ApiError, ApiResult};
use crate::letter::{self, LetterFields};
use crate::state::AppState;

/// The organisations from the root down to the one with unified code `code`, with what the path
/// needs of each.
pub async fn chain<'e, E: Executor<'e, Database = Any>>(
    e: E,
    code: &str,
) -> Result<Vec<PathOrg>, sqlx::Error> {
    let rows: Vec<(String, String, String, String, i64)> = sqlx::query_as(
        "SELECT id, code, name, category, transfer_auto_approve FROM orgs \
         WHERE code = substr($1, 1, length(code)) ORDER BY length(code)",
    )
    .bind(code)
    .fetch_all(e)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, code, name, category, auto)| PathOrg {
            id,
            code,
            name,
            category,
            auto: auto != 0,
        })
        .collect())
}

pub async fn get<'e, E: Executor<'e, Database = Any>>(
    e: E,
    id: &str,
) -> Result<Option<TransferRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {TRANSFER_COLUMNS} FROM transfers t WHERE t.id = $1"
    ))
    .bind(id)
    .fetch_optional(e)
    .await
}

pub async fn nodes<'e, E: Executor<'e, Database = Any>>(
    e: E,
    id: &str,
) -> Result<Vec<NodeView>, sqlx::Error> {
    sqlx::query_as(
        "SELECT seq, org_id, org_code, org_name, auto, state, acted_at FROM transfer_nodes \
         WHERE transfer_id = $1 ORDER BY seq",
    )
    .bind(id)
    .fetch_all(e)
    .await
}

pub async fn trail<'e, E: Executor<'e, Database = Any>>(
    e: E,
    id: &str,
) -> Result<Vec<StepView>, sqlx::Error> {
    sqlx::query_as(
        "SELECT action, from_node, to_node, opinion, actor_name, actor_org_name, at \
         FROM transfer_steps WHERE transfer_id = $1 ORDER BY n",
    )
    .bind(id)
    .fetch_all(e)
    .await
}

/// The open transfer of a member, if any: (id, destination).
pub async fn open_for_member<'e, E: Executor<'e, Database = Any>>(
    e: E,
    member_id: &str,
) -> Result<Option<(String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, to_name FROM transfers WHERE member_id = $1 AND state IN ('active', 'returned')",
    )
    .bind(member_id)
    .fetch_optional(e)
    .await
}

/// The refusal naming an open transfer.
pub fn in_transfer(name: &str, to_name: &str) -> ApiError {
    ApiError::conflict(
        "member_in_transfer",
        format!("{name}正在办理组织关系转接（转往“{to_name}”），转接办结、撤销或废件前不能办理"),
    )
}

/// The contacts remembered for these organisations (source branch, basic committee, receiving
/// branch), for prefilling the next form.
pub async fn remembered<'e, E: Executor<'e, Database = Any> + Copy>(
    e: E,
    source: Option<&str>,
    committee: Option<&str>,
    receiving: Option<&str>,
) -> Result<Contacts, sqlx::Error> {
    async fn one<'e, E: Executor<'e, Database = Any>>(
        e: E,
        org: Option<&str>,
    ) -> Result<Contact, sqlx::Error> {
        let Some(org) = org else {
            return Ok(Contact::default());
        };
        let row: Option<(String, String, String, String, String)> = sqlx::query_as(
            "SELECT contact, phone, fax, postcode, address FROM transfer_contacts WHERE org_id = $1",
        )
        .bind(org)
        .fetch_optional(e)
        .await?;
        Ok(row
            .map(|(contact, phone, fax, postcode, address)| Contact {
                contact,
                phone,
                fax,
                postcode,
                address,
            })
            .unwrap_or_default())
    }
    Ok(Contacts {
        source: one(e, source).await?,
        committee: one(e, committee).await?,
        receiving: one(e, receiving).await?,
    })
}

async fn remember(tx: &mut Tx, org: Option<&str>, c: &Contact) -> Result<(), sqlx::Error> {
    let Some(org) = org else { return Ok(()) };
    if c == &Contact::default() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO transfer_contacts (org_id, contact, phone, fax, postcode, address, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (org_id) DO UPDATE SET contact = $2, \
         phone = $3, fax = $4, postcode = $5, address = $6, updated_at = $7",
    )
    .bind(org)
    .bind(&c.contact)
    .bind(&c.phone)
    .bind(&c.fax)
    .bind(&c.postcode)
    .bind(&c.address)
    .bind(now_rfc3339())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The basic committee of a chain (root first): the nearest organisation of category 611, or
/// else the nearest committee above the branch.
pub fn committee_of(chain: &[PathOrg]) -> Option<&PathOrg> {
    chain
        .iter()
        .rev()
        .find(|o| o.category == "611")
        .or_else(|| chain.iter().rev().nth(1))
}

/// What a new transfer records.
pub struct NewTransfer<'a> {
    pub direction: Direction,
    pub kind: rules::Kind,
    pub member_id: Option<&'a str>,
    pub member_name: &'a str,
    pub id_number: &'a str,
    pub data: &'a TransferData,
    pub from: Option<&'a PathOrg>,
    pub from_name: &'a str,
    pub committee: Option<&'a PathOrg>,
    pub to: Option<&'a PathOrg>,
    pub to_name: &'a str,
    pub reason: &'a str,
    pub date: &'a str,
    pub plan: &'a PathPlan,
}

/// Records a transfer, locks the member, remembers the contacts, passes the auto-approving
/// nodes at the start of the path; one transaction.
pub async fn create(
    state: &AppState,
    actor: &Actor,
    new: NewTransfer<'_>,
    allowed: &Allowed,
) -> ApiResult<String> {
    let id = new_id();
    let now = now_rfc3339();
    let keys = crypto::keys();
    let idx = keys
        .id_number_index(Column::MembersIdNumber, new.id_number)
        .unwrap_or_else(|| format!("unknown:{id}"));
    let data = serde_json::to_string(new.data).map_err(ApiError::internal)?;
    let first: i64 = match new.direction {
        Direction::Outbound => 1,
        Direction::Inbound => 0,
    };
    let mut tx = state.db.begin().await?;
    if let Some(member) = new.member_id {
        let locked = sqlx::query(
            "UPDATE members SET in_transfer = 1, updated_at = $1 WHERE id = $2 AND in_transfer = 0",
        )
        .bind(&now)
        .bind(member)
        .execute(&mut *tx)
        .await?;
        if locked.rows_affected() != 1 {
            let open = open_for_member(&mut *tx, member).await?;
            return Err(in_transfer(
                new.member_name,
                open.as_ref().map(|o| o.1.as_str()).unwrap_or("其他党组织"),
            ));
        }
    }
    let last = new.plan.nodes.len() as i64 - 1;
    let first_node = &new.plan.nodes[first as usize];
    sqlx::query(
        "INSERT INTO transfers (id, direction, kind, state, member_id, member_name, id_number_idx, data, \
         from_org_id, from_org_code, from_name, to_org_id, to_org_code, to_name, reason, transfer_date, \
         current_step, current_org_code, source_end, path_len, step_since, version, created_by, \
         created_by_name, created_org_code, created_at, updated_at) \
         VALUES ($1, $2, $3, 'active', $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
         $18, $19, $20, 0, $21, $22, $23, $20, $20)",
    )
    .bind(&id)
    .bind(new.direction.as_str())
    .bind(new.kind.as_str())
    .bind(new.member_id)
    .bind(new.member_name)
    .bind(&idx)
    .bind(crypto::seal(Column::TransfersData, &data))
    .bind(new.from.map(|o| o.id.clone()))
    .bind(new.from.map(|o| o.code.clone()))
    .bind(new.from_name)
    .bind(new.to.map(|o| o.id.clone()))
    .bind(new.to.map(|o| o.code.clone()))
    .bind(new.to_name)
    .bind(new.reason)
    .bind(new.date)
    .bind(first)
    .bind(&first_node.code)
    .bind(new.plan.source_end.map(|s| s as i64).unwrap_or(-1))
    .bind(last + 1)
    .bind(&now)
    .bind(&actor.account_id)
    .bind(&actor.name)
    .bind(&actor.org_code)
    .execute(&mut *tx)
    .await?;
    for (seq, org) in new.plan.nodes.iter().enumerate() {
        let node_state = if new.direction == Direction::Outbound && seq == 0 {
            "source"
        } else {
            "waiting"
        };
        insert_node(&mut tx, &id, seq as i64, org, node_state).await?;
    }
    remember(
        &mut tx,
        new.from.map(|o| o.id.as_str()),
        &new.data.contacts.source,
    )
    .await?;
    remember(
        &mut tx,
        new.committee.map(|o| o.id.as_str()),
        &new.data.contacts.committee,
    )
    .await?;
    remember(
        &mut tx,
        new.to.map(|o| o.id.as_str()),
        &new.data.contacts.receiving,
    )
    .await?;
    let (action, event) = match new.direction {
        Direction::Outbound => ("submit", "transfer.submit"),
        Direction::Inbound => ("register", "transfer.register"),
    };
    let row = get(&mut *tx, &id)
        .await?
        .ok_or_else(|| ApiError::internal("transfer vanished"))?;
    step(
        &mut tx,
        actor,
        &id,
        action,
        new.from_name,
        &first_node.name,
        new.reason,
    )
    .await?;
    audit::append(
        &mut tx,
        &Who::from(actor),
        Event::ok(event, &id)
            .in_org(
                new.from
                    .or(new.to)
                    .map(|o| o.code.clone())
                    .unwrap_or_else(|| actor.org_code.clone()),
            )
            .with_detail(format!(
                "{} {}：{} → {}",
                new.kind.label(),
                new.member_name,
                new.from_name,
                new.to_name
            )),
    )
    .await?;
    advance(&mut tx, state, actor, &row, first, allowed).await?;
    tx.commit().await?;
    Ok(id)
}

async fn insert_node(
    tx: &mut Tx,
    transfer_id: &str,
    seq: i64,
    org: &PathOrg,
    node_state: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO transfer_nodes (transfer_id, seq, org_id, org_code, org_name, auto, state) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(transfer_id)
    .bind(seq)
    .bind(&org.id)
    .bind(&org.code)
    .bind(&org.name)
    .bind(i64::from(org.auto))
    .bind(node_state)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn step(
    tx: &mut Tx,
    actor: &Actor,
    transfer_id: &str,
    action: &str,
    from_node: &str,
    to_node: &str,
    opinion: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO transfer_steps (id, transfer_id, n, action, from_node, to_node, opinion, \
         actor_account_id, actor_name, actor_org_name, at) \
         VALUES ($1, $2, (SELECT COALESCE(MAX(n), 0) + 1 FROM transfer_steps WHERE transfer_id = $2), \
         $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(new_id())
    .bind(transfer_id)
    .bind(action)
    .bind(from_node)
    .bind(to_node)
    .bind(opinion)
    .bind(&actor.account_id)
    .bind(&actor.name)
    .bind(&actor.org_name)
    .bind(now_rfc3339())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Takes the transfer for this change: the one conditional UPDATE that concurrent or repeated
/// actions race on. `expect` are the states the action starts from.
async fn claim(tx: &mut Tx, row: &TransferRow, expect: &[State]) -> ApiResult<()> {
    let states: Vec<&str> = expect.iter().map(|s| s.as_str()).collect();
    let done = sqlx::query(&format!(
        "UPDATE transfers SET version = version + 1, updated_at = $1 \
         WHERE id = $2 AND version = $3 AND state IN ('{}')",
        states.join("', '")
    ))
    .bind(now_rfc3339())
    .bind(&row.id)
    .bind(row.version)
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() != 1 {
        return Err(ApiError::conflict(
            "transfer_changed",
            "该转接已被他人处理或已变化，请刷新后再操作",
        ));
    }
    Ok(())
}

async fn set_position(
    tx: &mut Tx,
    id: &str,
    state: State,
    step_: i64,
    org_code: &str,
) -> Result<(), sqlx::Error> {
    let now = now_rfc3339();
    let finished = (!state.open()).then(|| now.clone());
    sqlx::query(
        "UPDATE transfers SET state = $1, current_step = $2, current_org_code = $3, step_since = $4, \
         finished_at = $5 WHERE id = $6",
    )
    .bind(state.as_str())
    .bind(step_)
    .bind(org_code)
    .bind(&now)
    .bind(finished)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn set_node(tx: &mut Tx, id: &str, seq: i64, node_state: &str) -> Result<(), sqlx::Error> {
    let acted = (node_state != "waiting" && node_state != "current").then(now_rfc3339);
    sqlx::query(
        "UPDATE transfer_nodes SET state = $1, acted_at = COALESCE($2, acted_at) \
         WHERE transfer_id = $3 AND seq = $4",
    )
    .bind(node_state)
    .bind(acted)
    .bind(id)
    .bind(seq)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Moves the transfer on from node `start` (the first node that has not approved yet): passes
/// the auto-approving nodes, issues the letter when the source side has approved, completes an
/// outbound transfer to outside the platform when the whole path has.
async fn advance(
    tx: &mut Tx,
    state: &AppState,
    actor: &Actor,
    row: &TransferRow,
    start: i64,
    allowed: &Allowed,
) -> ApiResult<()> {
    let path = nodes(&mut **tx, &row.id).await?;
    let auto: Vec<bool> = path.iter().map(|n| n.auto != 0).collect();
    let (next, passed) = rules::next_from(&auto, start as usize, row.received_inside());
    for p in passed {
        set_node(tx, &row.id, p as i64, "auto").await?;
        let to = path
            .get(p + 1)
            .map(|n| n.org_name.as_str())
            .unwrap_or("转出平台");
        step(
            tx,
            actor,
            &row.id,
            "auto",
            &path[p].org_name,
            to,
            "自动审核",
        )
        .await?;
        if p as i64 == row.source_end {
            issue_letter(tx, state, actor, row, allowed).await?;
        }
    }
    match next {
        Some(n) => {
            set_node(tx, &row.id, n as i64, "current").await?;
            set_position(tx, &row.id, State::Active, n as i64, &path[n].org_code).await?;
        }
        None => {
            // The whole path to the root has approved: the member leaves the platform.
            complete_outside(tx, actor, row, "complete", "", allowed).await?;
        }
    }
    Ok(())
}

/// The letter's fields from the member's record and the transfer.
async fn letter_fields(tx: &mut Tx, row: &TransferRow) -> ApiResult<LetterFields> {
    let data = row.data()?;
    let member_id = row
        .member_id
        .as_deref()
        .ok_or_else(|| ApiError::internal("letter without member"))?;
    let m: Option<crate::member::MemberRow> = sqlx::query_as(&format!(
        "SELECT {} FROM members m WHERE m.id = $1",
        crate::member::MEMBER_COLUMNS
    ))
    .bind(member_id)
    .fetch_optional(&mut **tx)
    .await?;
    let m = m
        .ok_or_else(|| ApiError::conflict("member_gone", "该党员已不在党员信息库中"))?
        .decrypted()?;
    let birth =
        chrono::NaiveDate::parse_from_str(&m.birth_date, "%Y-%m-%d").map_err(ApiError::internal)?;
    use crate::member::dict::{label, CATEGORIES, ETHNICITIES};
    let committee = &data.contacts.committee;
    Ok(LetterFields {
        addressee: data.addressee.clone(),
        name: m.name.clone(),
        sex: match m.sex.as_str() {
            "male" => "男",
            "female" => "女",
            _ => "",
        }
        .to_string(),
        age: rules::age_on(birth, today()),
        ethnicity: label(&ETHNICITIES, &m.ethnicity)
            .unwrap_or(&m.ethnicity)
            .to_string(),
        category: label(&CATEGORIES, &m.category)
            .map(|c| c.trim_end_matches("党员"))
            .unwrap_or("")
            .to_string(),
        id_number: m.id_number.clone(),
        from_org: row.from_name.clone(),
        to_org: row.to_name.clone(),
        dues_paid_to: data.dues_paid_to.clone(),
        member_phone: m.phone.clone(),
        committee_address: committee.address.clone(),
        committee_phone: committee.phone.clone(),
        committee_fax: committee.fax.clone(),
        committee_postcode: committee.postcode.clone(),
    })
}

async fn issue_letter(
    tx: &mut Tx,
    state: &AppState,
    actor: &Actor,
    row: &TransferRow,
    allowed: &Allowed,
) -> ApiResult<()> {
    // The destination may have changed (re-route): read the row as it is now.
    let now = get(&mut **tx, &row.id)
        .await?
        .ok_or_else(|| ApiError::internal("transfer vanished"))?;
    let fields = letter_fields(tx, &now).await?;
    letter::store::issue(tx, state, &row.id, &fields, actor, allowed).await?;
    Ok(())
}

/// Approves 同意 at the current node and moves the transfer on.
pub async fn approve(
    state: &AppState,
    actor: &Actor,
    row: &TransferRow,
    opinion: &str,
    allowed: &Allowed,
) -> ApiResult<()> {
    let path = nodes(state.db.read(), &row.id).await?;
    let i = row.current_step as usize;
    let mut tx = state.db.begin().await?;
    claim(&mut tx, row, &[State::Active]).await?;
    set_node(&mut tx, &row.id, i as i64, "approved").await?;
    let to = path
        .get(i + 1)
        .map(|n| n.org_name.as_str())
        .unwrap_or("转出平台");
    step(
        &mut tx,
        actor,
        &row.id,
        "approve",
        &path[i].org_name,
        to,
        opinion,
    )
    .await?;
    audit::append(
        &mut tx,
        &Who::from(actor),
        Event::ok("transfer.approve", &row.id)
            .in_org(path[i].org_code.clone())
            .with_detail(format!(
                "{}：{} → {}",
                row.member_name, path[i].org_name, to
            )),
    )
    .await?;
    if i as i64 == row.source_end {
        issue_letter(&mut tx, state, actor, row, allowed).await?;
    }
    advance(&mut tx, state, actor, row, i as i64 + 1, allowed).await?;
    tx.commit().await?;
    Ok(())
}

/// Returns 退回 from the current node to the previous one that acts (or to the source).
pub async fn send_back(
    state: &AppState,
    actor: &Actor,
    row: &TransferRow,
    opinion: &str,
    allowed: &Allowed,
) -> ApiResult<()> {
    let path = nodes(state.db.read(), &row.id).await?;
    let auto: Vec<bool> = path.iter().map(|n| n.auto != 0).collect();
    let i = row.current_step as usize;
    let first = row.first_step() as usize;
    let mut tx = state.db.begin().await?;
    claim(&mut tx, row, &[State::Active]).await?;
    let back = rules::return_to(&auto, i, first);
    let reset_from = back.map(|j| j + 1).unwrap_or(first);
    for seq in reset_from..=i {
        set_node(&mut tx, &row.id, seq as i64, "waiting").await?;
    }
    let to_name = match back {
        Some(j) => {
            set_node(&mut tx, &row.id, j as i64, "current").await?;
            set_position(&mut tx, &row.id, State::Active, j as i64, &path[j].org_code).await?;
            path[j].org_name.clone()
        }
        None => {
            set_position(
                &mut tx,
                &row.id,
                State::Returned,
                first as i64 - 1,
                row.source_code(),
            )
            .await?;
            format!("{}（转出方）", row.from_name)
        }
    };
    // A letter the source side issued no longer holds when the transfer goes back to it.
    if row.source_end >= 0 && back.map(|j| j as i64 <= row.source_end).unwrap_or(true) {
        letter::store::withdraw_current(&mut tx, &row.id, actor, allowed).await?;
    }
    step(
        &mut tx,
        actor,
        &row.id,
        "return",
        &path[i].org_name,
        &to_name,
        opinion,
    )
    .await?;
    audit::append(
        &mut tx,
        &Who::from(actor),
        Event::ok("transfer.return", &row.id)
            .in_org(path[i].org_code.clone())
            .with_detail(format!(
                "{}：{} → {}：{}",
                row.member_name, path[i].org_name, to_name, opinion
            )),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Resubmits 重新提交 a returned transfer from the source.
pub async fn resubmit(
    state: &AppState,
    actor: &Actor,
    row: &TransferRow,
    opinion: &str,
    allowed: &Allowed,
) -> ApiResult<()> {
    let path = nodes(state.db.read(), &row.id).await?;
    let first = row.first_step();
    let mut tx = state.db.begin().await?;
    claim(&mut tx, row, &[State::Returned]).await?;
    step(
        &mut tx,
        actor,
        &row.id,
        "resubmit",
        &row.from_name,
        &path[first as usize].org_name,
        opinion,
    )
    .await?;
    audit::append(
        &mut tx,
        &Who::from(actor),
        Event::ok("transfer.resubmit", &row.id)
            .in_org(row.source_code().to_string())
            .with_detail(row.member_name.clone()),
    )
    .await?;
    advance(&mut tx, state, actor, row, first, allowed).await?;
    tx.commit().await?;
    Ok(())
}

/// Ends a transfer without moving the member: withdraw 撤销, void 废件, or an abnormal completion
/// that leaves the member where it is. Releases the member's lock, withdraws the letter.
pub async fn end(
    state: &AppState,
    actor: &Actor,
    row: &TransferRow,
    to: State,
    action: &str,
    opinion: &str,
    allowed: &Allowed,
) -> ApiResult<()> {
    let expect: &[State] = match to {
        State::Withdrawn => &[State::Active],
        State::Voided => &[State::Returned],
        _ => &[State::Active, State::Returned],
    };
    let mut tx = state.db.begin().await?;
    claim(&mut tx, row, expect).await?;
    if to == State::Withdrawn {
        // Only before the first approval by a node (auto-approvals do not count).
        let approved: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM transfer_nodes WHERE transfer_id = $1 AND state IN ('approved', 'received')",
        )
        .bind(&row.id)
        .fetch_one(&mut *tx)
        .await?;
        if approved > 0 {
            return Err(ApiError::conflict(
                "transfer_approved",
                "该转接已有党组织审批同意，不能撤销；可请当前办理的党组织退回后废件",
            ));
        }
    }
    set_position(
        &mut tx,
        &row.id,
        to,
        row.current_step,
        &row.current_org_code,
    )
    .await?;
    release(&mut tx, row).await?;
    letter::store::withdraw_current(&mut tx, &row.id, actor, allowed).await?;
    step(
        &mut tx,
        actor,
        &row.id,
        action,
        &actor.org_name,
        "",
        opinion,
    )
    .await?;
    audit::append(
        &mut tx,
        &Who::from(actor),
        Event::ok(
            match action {
                "withdraw" => "transfer.withdraw",
                "void" => "transfer.void",
                _ => "transfer.abnormal",
            },
            &row.id,
        )
        .in_org(row.source_code().to_string())
        .with_detail(format!("{}：{}", row.member_name, opinion)),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

async fn release(tx: &mut Tx, row: &TransferRow) -> Result<(), sqlx::Error> {
    if let Some(member) = &row.member_id {
        sqlx::query("UPDATE members SET in_transfer = 0, updated_at = $1 WHERE id = $2")
            .bind(now_rfc3339())
            .bind(member)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Receives 接收 at the target branch: the member moves (or, inbound, is entered), the letter
/// is marked received, the transfer completed — one transaction.
pub async fn receive(
    state: &AppState,
    actor: &Actor,
    row: &TransferRow,
    opinion: &str,
    allowed: &Allowed,
) -> ApiResult<String> {
    let path = nodes(state.db.read(), &row.id).await?;
    let last = path.len() - 1;
    let to_id = row
        .to_org_id
        .clone()
        .ok_or_else(|| ApiError::conflict("transfer_outside", "该转接转往平台外，无需接收"))?;
    let branch = crate::org::routes::load(&state.db, &to_id).await?;
    if !branch.is_active() {
        return Err(ApiError::conflict(
            "org_revoked",
            format!(
                "党组织“{}”已撤销，不能接收；请上级党组织改变转接路径",
                branch.name
            ),
        ));
    }
    let mut tx = state.db.begin().await?;
    if let Some(l) = letter::store::current(&mut *tx, &row.id).await? {
        if l.state() == "issued" && l.expired(today()) {
            return Err(ApiError::conflict(
                "letter_expired",
                format!(
                    "介绍信（第{}号）已于{}过期，须由转出方重新开具后才能接收",
                    l.number(),
                    l.valid_until()
                ),
            ));
        }
    }
    claim(&mut tx, row, &[State::Active]).await?;
    let member_id = arrive(&mut tx, row, &branch, allowed).await?;
    set_node(&mut tx, &row.id, last as i64, "received").await?;
    set_position(
        &mut tx,
        &row.id,
        State::Completed,
        last as i64,
        &path[last].org_code,
    )
    .await?;
    step(
        &mut tx,
        actor,
        &row.id,
        "receive",
        &path[last].org_name,
        "",
        opinion,
    )
    .await?;
    audit::append(
        &mut tx,
        &Who::from(actor),
        Event::ok("transfer.receive", &row.id)
            .in_org(branch.code.clone())
            .with_detail(format!(
                "{}：{} → {}",
                row.member_name, row.from_name, branch.name
            )),
    )
    .await?;
    tx.commit().await?;
    Ok(member_id)
}

/// The member arrives at the target branch inside `tx`: an outbound transfer's member moves
/// (branch, code, lock released — only while it is still locked for this transfer), with the
/// ledger rows of both sides and the letter received; an inbound registration's record is
/// entered. Returns the member's id, recorded on the transfer.
async fn arrive(
    tx: &mut Tx,
    row: &TransferRow,
    branch: &crate::org::OrgRow,
    allowed: &Allowed,
) -> ApiResult<String> {
    let member = match row.direction() {
        Direction::Outbound => {
            let member = row.member_id.clone().unwrap_or_default();
            let moved = sqlx::query(
                "UPDATE members SET branch_id = $1, org_code = $2, in_transfer = 0, updated_at = $3 \
                 WHERE id = $4 AND in_transfer = 1",
            )
            .bind(&branch.id)
            .bind(&branch.code)
            .bind(now_rfc3339())
            .bind(&member)
            .execute(&mut **tx)
            .await?;
            if moved.rows_affected() != 1 {
                return Err(ApiError::conflict(
                    "member_gone",
                    "该党员已不在转接中，不能接收",
                ));
            }
            let from = row.from_org_code.as_deref().unwrap_or("");
            history::ledger(
                tx,
                &member,
                from,
                "left",
                "transfer_out",
                "transfer_out",
                None,
            )
            .await?;
            history::ledger(
                tx,
                &member,
                &branch.code,
                "entered",
                "transfer_in",
                "transfer_in",
                None,
            )
            .await?;
            letter::store::mark_received(tx, &row.id, allowed).await?;
            member
        }
        Direction::Inbound => enter_inbound(tx, row, branch, allowed).await?,
    };
    sqlx::query("UPDATE transfers SET member_id = $1 WHERE id = $2")
        .bind(&member)
        .bind(&row.id)
        .execute(&mut **tx)
        .await?;
    Ok(member)
}

/// Enters the record an inbound registration carries into the target branch (inside the
/// receipt's transaction).
async fn enter_inbound(
    tx: &mut Tx,
    row: &TransferRow,
    branch: &crate::org::OrgRow,
    allowed: &Allowed,
) -> ApiResult<String> {
    let data = row.data()?;
    let input: crate::member::rules::MemberInput = data
        .member
        .clone()
        .map(serde_json::from_value)
        .transpose()
        .map_err(ApiError::internal)?
        .unwrap_or_default();
    let v = crate::member::rules::validate(&input, today())?;
    crate::member::routes::ensure_unique(tx, &v, "").await?;
    let id = new_id();
    crate::member::routes::write(tx, &id, branch, &v, true, allowed).await?;
    history::ledger(
        tx,
        &id,
        &branch.code,
        "entered",
        "transfer_in",
        "transfer_in",
        None,
    )
    .await?;
    Ok(id)
}

/// The member of an outbound transfer to outside the platform moves to history with reason 转出
/// (the whole path approved, or an abnormal completion that moves it).
async fn complete_outside(
    tx: &mut Tx,
    actor: &Actor,
    row: &TransferRow,
    action: &str,
    opinion: &str,
    allowed: &Allowed,
) -> ApiResult<()> {
    if let Some(member) = &row.member_id {
        history::move_out(
            tx,
            actor,
            Leaving {
                member_id: member,
                reason: crate::approval::Reason::TransferredOut,
                left_on: &row.transfer_date,
                remark: &format!("转往{}", row.to_name),
                application_id: None,
            },
            allowed,
        )
        .await?;
    }
    let path = nodes(&mut **tx, &row.id).await?;
    let last = path.len() as i64 - 1;
    set_position(
        tx,
        &row.id,
        State::Completed,
        last,
        &path[last as usize].org_code,
    )
    .await?;
    step(
        tx,
        actor,
        &row.id,
        action,
        &path[last as usize].org_name,
        &row.to_name,
        opinion,
    )
    .await?;
    audit::append(
        tx,
        &Who::from(actor),
        Event::ok("transfer.complete", &row.id)
            .in_org(row.source_code().to_string())
            .with_detail(format!("{} 转往 {}", row.member_name, row.to_name)),
    )
    .await?;
    Ok(())
}

/// Completes a transfer abnormally 异常办结 (tier 1, with a reason): the member moves to the
/// destination when asked (inside: the target branch; outside: history with reason 转出;
/// inbound: entered into the target branch), or stays where it is.
pub async fn abnormal(
    state: &AppState,
    actor: &Actor,
    row: &TransferRow,
    reason: &str,
    move_member: bool,
    allowed: &Allowed,
) -> ApiResult<()> {
    if !move_member {
        return end(
            state,
            actor,
            row,
            State::Abnormal,
            "abnormal",
            reason,
            allowed,
        )
        .await;
    }
    let mut tx = state.db.begin().await?;
    claim(&mut tx, row, &[State::Active, State::Returned]).await?;
    match (&row.to_org_id, row.direction()) {
        (Some(to), _) => {
            let branch = crate::org::store::get(&mut *tx, to)
                .await?
                .ok_or_else(|| ApiError::not_found("党组织"))?;
            arrive(&mut tx, row, &branch, allowed).await?;
        }
        (None, _) => {
            history::move_out(
                &mut tx,
                actor,
                Leaving {
                    member_id: row.member_id.as_deref().unwrap_or(""),
                    reason: crate::approval::Reason::TransferredOut,
                    left_on: &row.transfer_date,
                    remark: &format!("转往{}（异常办结）", row.to_name),
                    application_id: None,
                },
                allowed,
            )
            .await?;
        }
    }
    set_position(
        &mut tx,
        &row.id,
        State::Abnormal,
        row.current_step,
        &row.current_org_code,
    )
    .await?;
    step(
        &mut tx,
        actor,
        &row.id,
        "abnormal",
        &actor.org_name,
        &row.to_name,
        reason,
    )
    .await?;
    audit::append(
        &mut tx,
        &Who::from(actor),
        Event::ok("transfer.abnormal", &row.id)
            .in_org(row.source_code().to_string())
            .with_detail(format!("{}：{}（党员转至目的地）", row.member_name, reason)),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Re-routes 改变转接路径: the nodes after the current one are replaced by `tail`, ending at the
/// new target branch; a letter already issued is issued again for the new destination.
pub async fn reroute(
    state: &AppState,
    actor: &Actor,
    row: &TransferRow,
    tail: &[PathOrg],
    opinion: &str,
    allowed: &Allowed,
) -> ApiResult<()> {
    let path = nodes(state.db.read(), &row.id).await?;
    let cur = row.current_step as usize;
    let target = tail
        .last()
        .ok_or_else(|| ApiError::field("path", "请选择新的转往党支部"))?;
    // The source side ends at the highest node of the new path.
    let mut codes: Vec<&str> = path[..=cur].iter().map(|n| n.org_code.as_str()).collect();
    codes.extend(tail.iter().map(|o| o.code.as_str()));
    let top = codes
        .iter()
        .enumerate()
        .min_by_key(|(i, c)| (c.len(), *i))
        .map(|(i, _)| i as i64)
        .unwrap_or(0);
    let source_end = if row.direction() == Direction::Inbound {
        -1
    } else {
        top
    };
    let mut tx = state.db.begin().await?;
    claim(&mut tx, row, &[State::Active]).await?;
    sqlx::query("DELETE FROM transfer_nodes WHERE transfer_id = $1 AND seq > $2")
        .bind(&row.id)
        .bind(cur as i64)
        .execute(&mut *tx)
        .await?;
    for (k, org) in tail.iter().enumerate() {
        insert_node(&mut tx, &row.id, (cur + 1 + k) as i64, org, "waiting").await?;
    }
    let to_name = rules::display_name(&chain(&mut *tx, &target.code).await?);
    sqlx::query(
        "UPDATE transfers SET to_org_id = $1, to_org_code = $2, to_name = $3, path_len = $4, \
         source_end = $5 WHERE id = $6",
    )
    .bind(&target.id)
    .bind(&target.code)
    .bind(&to_name)
    .bind((cur + 1 + tail.len()) as i64)
    .bind(source_end)
    .bind(&row.id)
    .execute(&mut *tx)
    .await?;
    let old_path: Vec<&str> = path[cur + 1..]
        .iter()
        .map(|n| n.org_name.as_str())
        .collect();
    let new_path: Vec<&str> = tail.iter().map(|o| o.name.as_str()).collect();
    step(
        &mut tx,
        actor,
        &row.id,
        "reroute",
        &old_path.join(" → "),
        &new_path.join(" → "),
        opinion,
    )
    .await?;
    audit::append(
        &mut tx,
        &Who::from(actor),
        Event::ok("transfer.reroute", &row.id)
            .in_org(row.current_org_code.clone())
            .with_detail(format!(
                "{}：改转往“{}”（{}）",
                row.member_name, target.name, opinion
            )),
    )
    .await?;
    // A letter issued for the old destination is withdrawn; when the source side has already
    // approved under the new path, a new one names the new destination.
    if let Some(l) = letter::store::current(&mut *tx, &row.id).await? {
        if l.state() == "issued" {
            letter::store::withdraw_current(&mut tx, &row.id, actor, allowed).await?;
            if source_end >= 0 && (cur as i64) > source_end {
                issue_letter(&mut tx, state, actor, row, allowed).await?;
            }
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Re-issues 重新开具 the letter (an expired one cannot be received).
pub async fn reissue(
    state: &AppState,
    actor: &Actor,
    row: &TransferRow,
    allowed: &Allowed,
) -> ApiResult<()> {
    let mut tx = state.db.begin().await?;
    claim(&mut tx, row, &[State::Active]).await?;
    let l = letter::store::reissue(&mut tx, state, &row.id, actor, allowed).await?;
    step(
        &mut tx,
        actor,
        &row.id,
        "reissue",
        &row.from_name,
        &row.to_name,
        &format!("新介绍信第{}号", l.number()),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// A branch a transfer may go to, as a picker shows it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Destination {
    pub id: String,
    pub name: String,
    /// The organisations above it, root first (名称路径)
    pub path: String,
}

/// Active branches whose name contains `q` (platform-wide, or within the subtree `scope`), at
/// most `limit`, with the names above them.
pub async fn destinations(
    db: &crate::db::Db,
    q: &str,
    scope: Option<&str>,
    limit: i64,
) -> Result<Vec<Destination>, sqlx::Error> {
    let pattern = format!(
        "%{}%",
        q.replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    );
    let scope = scope.unwrap_or("");
    let rows: Vec<(String, String, String)> = sqlx::query_as(&format!(
        "SELECT id, code, name FROM orgs WHERE status = 'active' AND category IN ('631', '632', '9') \
         AND (name LIKE $1 ESCAPE '\\' OR short_name LIKE $1 ESCAPE '\\') \
         AND code >= $2 AND code < $3 ORDER BY code LIMIT {limit}"
    ))
    .bind(&pattern)
    .bind(scope)
    .bind(crate::db::subtree_upper(scope))
    .fetch_all(db.read())
    .await?;
    let mut out = Vec::new();
    for (id, code, name) in rows {
        let chain = chain(db.read(), &code).await?;
        let above: Vec<&str> = chain[..chain.len().saturating_sub(1)]
            .iter()
            .map(|o| o.name.as_str())
            .collect();
        out.push(Destination {
            id,
            name,
            path: above.join(" › "),
        });
    }
    Ok(out)
}

/// Whether the organisation passes transfer steps at once 自动审核.
pub async fn auto_approve<'e, E: Executor<'e, Database = Any>>(
    e: E,
    org_id: &str,
) -> Result<Option<bool>, sqlx::Error> {
    let v: Option<i64> = sqlx::query_scalar("SELECT transfer_auto_approve FROM orgs WHERE id = $1")
        .bind(org_id)
        .fetch_optional(e)
        .await?;
    Ok(v.map(|v| v != 0))
}

/// Marks an organisation 自动审核 (or not) for the transfers that reach it from now on, with its
/// audit record. Paths already stored keep their nodes' marks.
pub async fn set_auto_approve(
    db: &crate::db::Db,
    actor: &Actor,
    org: &crate::org::OrgRow,
    on: bool,
    _allowed: &Allowed,
) -> ApiResult<()> {
    let mut tx = db.begin().await?;
    sqlx::query("UPDATE orgs SET transfer_auto_approve = $1, updated_at = $2 WHERE id = $3")
        .bind(i64::from(on))
        .bind(now_rfc3339())
        .bind(&org.id)
        .execute(&mut *tx)
        .await?;
    audit::append(
        &mut tx,
        &Who::from(actor),
        Event::ok("org.transfer_auto_approve", &org.id)
            .in_org(org.code.clone())
            .with_detail(format!(
                "{}：转接自动审核{}",
                org.name,
                if on { "开启" } else { "关闭" }
            )),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
