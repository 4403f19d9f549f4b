//! The member summary sheet 汇总表 of the import, filled with synthetic people: shared by the
//! import suite and the scale benchmark.

use chrono::NaiveDate;
use dangjian_server::import::COLUMNS;
use serde_json::Value;

use crate::Api;

/// A synthetic person for row `i` (0-based) of batch `batch`, in the template's column order.
pub fn person(batch: u32, i: u32, branch_code: &str) -> Vec<String> {
    // Distinct ID numbers for up to 12 million rows: a day of 14,000 (some 38 years), then the
    // next sequence code.
    let birth = NaiveDate::from_ymd_opt(1955 + batch as i32 * 4, 1, 1).unwrap()
        + chrono::Duration::days(i64::from(i % 14_000));
    let id = dangjian_server::member::idcard::compose("469001", birth, 101 + (i / 14_000) as u16);
    let joined = birth + chrono::Duration::days(25 * 366);
    let full = joined + chrono::Duration::days(400);
    let n = batch * 100_000 + i;
    let values = [
        ("org_code", branch_code.to_string()),
        (
            "name",
            format!("导测{}", ["甲", "乙", "丙", "丁", "戊"][(i % 5) as usize]),
        ),
        ("id_number", id),
        ("ethnicity", "汉族".into()),
        ("education", "大学本科毕业".into()),
        ("category", "正式党员".into()),
        ("joined_on", joined.to_string()),
        ("full_on", full.to_string()),
        ("job", "在岗职工".into()),
        ("phone", format!("1985{n:07}")),
        ("address", "某市某区测试路1号".into()),
        ("registered_phone", format!("1995{n:07}")),
    ];
    COLUMNS
        .iter()
        .map(|c| {
            values
                .iter()
                .find(|(k, _)| *k == c.key)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        })
        .collect()
}

pub fn col(key: &str) -> usize {
    COLUMNS.iter().position(|c| c.key == key).unwrap()
}

/// An .xlsx with the template's heading and `rows`.
pub fn workbook(rows: &[Vec<String>]) -> Vec<u8> {
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    for (c, column) in COLUMNS.iter().enumerate() {
        sheet.write_string(0, c as u16, column.label).unwrap();
    }
    for (r, row) in rows.iter().enumerate() {
        for (c, v) in row.iter().enumerate() {
            if !v.is_empty() {
                sheet.write_string(r as u32 + 1, c as u16, v).unwrap();
            }
        }
    }
    book.save_to_buffer().unwrap()
}

/// Uploads `bytes` into `org_id`; returns the reply (202 with the import, or a refusal).
pub async fn upload(api: &Api, org_id: &str, bytes: Vec<u8>) -> (u16, Value) {
    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(bytes).file_name("汇总表.xlsx"),
        )
        .text("org_id", org_id.to_string());
    let res = api
        .client
        .post(format!("{}/api/v1/import/members", api.base))
        .bearer_auth(&api.token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}
