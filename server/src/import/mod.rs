//! Member summary-sheet import 导入党员信息汇总表 (issue 16 item 4): the published template,
//! reading an uploaded workbook (`sheet`), validating every row with the member rules
//! (`check`, pure), the pending import kept sealed until the operator confirms (`store`), the
//! API (`routes`) and the page 导入汇总表 (`pages`).

pub mod check;
pub mod pages;
pub mod routes;
pub mod sheet;
pub mod store;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::member::dict::{CATEGORIES, EDUCATIONS, ETHNICITIES, JOBS};

/// One column of the summary sheet 汇总表: the field it fills (a `MemberInput` field, or
/// `org_code`), its heading, whether it must be filled, and the note of 填写说明.
#[derive(Debug, Clone, Copy)]
pub struct SheetColumn {
    pub key: &'static str,
    pub label: &'static str,
    pub required: bool,
    pub note: &'static str,
}

const fn col(
    key: &'static str,
    label: &'static str,
    required: bool,
    note: &'static str,
) -> SheetColumn {
    SheetColumn {
        key,
        label,
        required,
        note,
    }
}

/// The columns of the template, in order.
pub const COLUMNS: [SheetColumn; 17] = [
    col(
        "org_code",
        "党组织代码",
        true,
        "党员所在党支部的党组织代码（党支部、联合党支部或临时基层党组织，须在本次导入的党组织之下）",
    ),
    col("name", "姓名", true, "不超过30个字，不含数字"),
    col(
        "id_number",
        "公民身份证号",
        true,
        "18位，末位可为X；请按文本填写，勿使用科学计数法",
    ),
    col("sex", "性别", false, "男或女；不填时按公民身份证号"),
    col("ethnicity", "民族", true, "从下拉列表选择，如：汉族"),
    col(
        "birth_date",
        "出生日期",
        false,
        "格式 YYYY-MM-DD；不填时按公民身份证号；须年满18周岁",
    ),
    col("education", "学历", true, "从下拉列表选择具体学历"),
    col("category", "人员类别", true, "正式党员或预备党员"),
    col(
        "joined_on",
        "加入党组织日期",
        true,
        "格式 YYYY-MM-DD，不早于1921-07-01",
    ),
    col(
        "full_on",
        "转正日期",
        false,
        "正式党员必填，预备党员不填；格式 YYYY-MM-DD",
    ),
    col("job", "工作岗位", true, "从下拉列表选择"),
    col("phone", "联系电话", true, "手机号或固定电话"),
    col("address", "家庭住址", true, "不超过200个字"),
    col(
        "registered_phone",
        "注册手机号",
        false,
        "11位手机号，不能与其他党员重复",
    ),
    col("origin", "籍贯", false, "选填"),
    col("title", "职称", false, "选填"),
    col("new_social_stratum", "新社会阶层情况", false, "选填"),
];

/// The Chinese heading of a field (a column key or a member rule's field name).
pub fn label_of(field: &str) -> String {
    COLUMNS
        .iter()
        .find(|c| c.key == field)
        .map(|c| c.label.to_string())
        .unwrap_or_else(|| match field {
            "status" => "党籍状态".to_string(),
            "" => "整行".to_string(),
            other => other.to_string(),
        })
}

/// One problem of a bad row: its row number in the sheet, the column (Chinese) and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RowProblem {
    /// 行号 (as the spreadsheet numbers rows; the heading is row 1)
    pub row: u32,
    /// 字段 (the column heading)
    pub field: String,
    /// 原因
    pub reason: String,
}

/// validating | pending | failed | confirmed | cancelled
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ImportState {
    /// 校验中: the rows are being read and validated.
    Validating,
    /// 待确认: validated; waiting for 确认导入 or 取消.
    Pending,
    /// 校验失败: the file could not be read (see `message`).
    Failed,
    /// 已导入: the good rows were written.
    Confirmed,
    /// 已取消
    Cancelled,
}

impl ImportState {
    pub fn as_str(self) -> &'static str {
        match self {
            ImportState::Validating => "validating",
            ImportState::Pending => "pending",
            ImportState::Failed => "failed",
            ImportState::Confirmed => "confirmed",
            ImportState::Cancelled => "cancelled",
        }
    }
    pub fn parse(s: &str) -> Option<ImportState> {
        [
            ImportState::Validating,
            ImportState::Pending,
            ImportState::Failed,
            ImportState::Confirmed,
            ImportState::Cancelled,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
    pub fn label(self) -> &'static str {
        match self {
            ImportState::Validating => "校验中",
            ImportState::Pending => "待确认",
            ImportState::Failed => "校验失败",
            ImportState::Confirmed => "已导入",
            ImportState::Cancelled => "已取消",
        }
    }
}

/// An import as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ImportView {
    pub id: String,
    /// The organisation imported into (the rows' branches are below it)
    pub org_id: String,
    pub org_name: String,
    pub file_name: String,
    pub state: ImportState,
    pub state_label: String,
    /// Data rows read from the sheet
    pub total_rows: i64,
    /// Rows validated so far (progress while `validating`)
    pub done_rows: i64,
    /// Rows that pass every rule (written on confirmation)
    pub good_rows: i64,
    /// Rows with at least one problem (never written)
    pub bad_rows: i64,
    /// Every problem of every bad row (at most 10,000), by row
    pub problems: Vec<RowProblem>,
    /// Why the file could not be read (`failed`)
    pub message: Option<String>,
    pub created_at: String,
    pub confirmed_at: Option<String>,
}

/// The largest summary sheet an upload may carry (a million rows fit).
pub const MAX_UPLOAD_BYTES: usize = 256 * 1024 * 1024;

/// `POST /api/v1/import/members` and the page's `POST /import/members`: the upload routes.
pub fn is_upload_route(method: &axum::http::Method, path: &str) -> bool {
    *method == axum::http::Method::POST
        && (path == "/api/v1/import/members" || path == "/import/members")
}

/// Most problems kept in a report (the counts stay exact).
pub const MAX_PROBLEMS: usize = 10_000;

/// The template workbook 党员信息汇总表: the heading row, a sheet 填写说明 and drop-down lists
/// for the coded columns (from a hidden sheet 代码表).
pub fn template() -> Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
    use rust_xlsxwriter::{DataValidation, Format, Workbook};
    let mut book = Workbook::new();
    let text = Format::new().set_num_format("@");
    let head = Format::new().set_bold().set_background_color("#F2DCDB");
    let sheet = book.add_worksheet();
    sheet.set_name("党员信息汇总表")?;
    for (c, column) in COLUMNS.iter().enumerate() {
        let c = c as u16;
        let title = if column.required {
            format!("{}*", column.label)
        } else {
            column.label.to_string()
        };
        sheet.write_string_with_format(0, c, title, &head)?;
        sheet.set_column_width(c, if column.key == "address" { 30.0 } else { 16.0 })?;
        sheet.set_column_format(c, &text)?;
    }
    sheet.set_freeze_panes(1, 0)?;
    // The code lists live on a hidden sheet; each coded column validates against its list.
    let lists: [(&str, Vec<&str>); 5] = [
        ("sex", vec!["男", "女"]),
        ("ethnicity", ETHNICITIES.iter().map(|(_, l)| *l).collect()),
        (
            "education",
            EDUCATIONS
                .iter()
                .filter(|(c, _)| !crate::member::dict::is_education_group(c))
                .map(|(_, l)| *l)
                .collect(),
        ),
        ("category", CATEGORIES.iter().map(|(_, l)| *l).collect()),
        ("job", JOBS.iter().map(|(_, l)| *l).collect()),
    ];
    let last_row = 1_048_575;
    for (i, (key, values)) in lists.iter().enumerate() {
        let c = COLUMNS
            .iter()
            .position(|col| col.key == *key)
            .expect("coded column") as u16;
        let letter = (b'A' + i as u8) as char;
        let v = DataValidation::new()
            .allow_list_formula(
                format!("代码表!${letter}$2:${letter}${}", values.len() + 1)
                    .as_str()
                    .into(),
            )
            .set_error_title("不在代码表中")?
            .set_error_message("请从下拉列表中选择")?;
        sheet.add_data_validation(1, c, last_row, c, &v)?;
    }
    let notes = book.add_worksheet();
    notes.set_name("填写说明")?;
    let bold = Format::new().set_bold();
    notes.write_string_with_format(0, 0, "列名", &bold)?;
    notes.write_string_with_format(0, 1, "是否必填", &bold)?;
    notes.write_string_with_format(0, 2, "填写说明", &bold)?;
    notes.set_column_width(0, 18.0)?;
    notes.set_column_width(2, 80.0)?;
    for (r, column) in COLUMNS.iter().enumerate() {
        let r = r as u32 + 1;
        notes.write_string(r, 0, column.label)?;
        notes.write_string(r, 1, if column.required { "必填" } else { "选填" })?;
        notes.write_string(r, 2, column.note)?;
    }
    let tail = COLUMNS.len() as u32 + 2;
    for (i, line) in [
        "1. 第1行为列名，请勿修改；每行填写一名党员，从第2行开始。",
        "2. 带*的列必须填写；日期一律按 YYYY-MM-DD 填写。",
        "3. 上传后系统逐行校验，列出每一行的全部问题（行号、字段、原因）；确认导入前不会写入任何党员。",
        "4. 确认导入时只写入校验通过的行；公民身份证号、注册手机号不能与党员信息库或本表其他行重复。",
    ]
    .iter()
    .enumerate()
    {
        notes.write_string(tail + i as u32, 0, *line)?;
    }
    let codes = book.add_worksheet();
    codes.set_name("代码表")?;
    for (i, (key, values)) in lists.iter().enumerate() {
        codes.write_string_with_format(0, i as u16, label_of(key), &bold)?;
        for (r, v) in values.iter().enumerate() {
            codes.write_string(r as u32 + 1, i as u16, *v)?;
        }
    }
    codes.set_hidden(true);
    book.save_to_buffer()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_template_is_a_workbook() {
        let bytes = super::template().unwrap();
        assert!(bytes.starts_with(b"PK"));
        let sheet = super::sheet::read(&bytes).unwrap();
        assert_eq!(sheet.rows.len(), 0);
    }
}
