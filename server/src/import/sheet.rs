//! Reading an uploaded summary sheet (pure): the first worksheet, cell by cell through
//! calamine's streaming cell reader (no whole-sheet grid in memory), into rows of text keyed
//! by the template's columns. The heading row is found by its column names, so columns may
//! be in any order and extra columns are ignored.

use std::io::Cursor;

use calamine::{DataRef, Reader, Xlsx};

use super::COLUMNS;

/// One data row: its row number in the spreadsheet (1-based) and the text of each template
/// column (empty when absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SheetRow {
    pub row: u32,
    pub cells: Vec<String>,
}

impl SheetRow {
    /// The text of the column `key`.
    pub fn get(&self, key: &str) -> &str {
        COLUMNS
            .iter()
            .position(|c| c.key == key)
            .and_then(|i| self.cells.get(i))
            .map(String::as_str)
            .unwrap_or("")
    }
}

/// The rows of a sheet (blank rows skipped).
#[derive(Debug, Clone, Default)]
pub struct Sheet {
    pub rows: Vec<SheetRow>,
}

/// Most data rows an upload may hold.
pub const MAX_ROWS: usize = 1_048_575;

/// Reads the first worksheet of an .xlsx file. The message of an error is for the user.
pub fn read(bytes: &[u8]) -> Result<Sheet, String> {
    let unreadable = |_| "文件无法读取：请上传由模板填写的 Excel 工作簿（.xlsx）".to_string();
    let mut book: Xlsx<_> = Xlsx::new(Cursor::new(bytes)).map_err(unreadable)?;
    let first = book
        .sheet_names()
        .first()
        .cloned()
        .ok_or_else(|| "工作簿中没有工作表".to_string())?;
    let mut cells = book.worksheet_cells_reader(&first).map_err(unreadable)?;
    // Column positions of the template's columns, once the heading row is seen.
    let mut positions: Option<Vec<Option<u32>>> = None;
    let mut current: Option<(u32, Vec<(u32, String)>)> = None;
    let mut rows = Vec::new();
    let mut finish = |row: u32,
                      values: Vec<(u32, String)>,
                      positions: &mut Option<Vec<Option<u32>>>|
     -> Result<(), String> {
        match positions {
            None => {
                // The heading: the first row naming 姓名 and 公民身份证号.
                let names: Vec<(u32, String)> = values
                    .into_iter()
                    .map(|(c, v)| (c, v.trim().trim_end_matches('*').trim().to_string()))
                    .collect();
                if names.iter().any(|(_, n)| n == "姓名")
                    && names.iter().any(|(_, n)| n == "公民身份证号")
                {
                    let found: Vec<Option<u32>> = COLUMNS
                        .iter()
                        .map(|col| names.iter().find(|(_, n)| n == col.label).map(|(c, _)| *c))
                        .collect();
                    let missing: Vec<&str> = COLUMNS
                        .iter()
                        .zip(&found)
                        .filter(|(col, f)| col.required && f.is_none())
                        .map(|(col, _)| col.label)
                        .collect();
                    if !missing.is_empty() {
                        return Err(format!(
                            "表头缺少必填列：{}（请使用系统提供的模板）",
                            missing.join("、")
                        ));
                    }
                    *positions = Some(found);
                } else if row >= 10 {
                    return Err(
                        "未找到表头（应含“姓名”“公民身份证号”等列，请使用系统提供的模板）"
                            .to_string(),
                    );
                }
            }
            Some(pos) => {
                if values.iter().all(|(_, v)| v.trim().is_empty()) {
                    return Ok(());
                }
                let cells = pos
                    .iter()
                    .map(|p| {
                        p.and_then(|p| values.iter().find(|(c, _)| *c == p))
                            .map(|(_, v)| v.trim().to_string())
                            .unwrap_or_default()
                    })
                    .collect();
                if rows.len() >= MAX_ROWS {
                    return Err(format!("文件行数超过上限 {MAX_ROWS} 行，请分批导入"));
                }
                rows.push(SheetRow {
                    row: row + 1,
                    cells,
                });
            }
        }
        Ok(())
    };
    while let Some(cell) = cells.next_cell().map_err(unreadable)? {
        let (r, c) = cell.get_position();
        let text = text_of(cell.get_value());
        match &mut current {
            Some((row, values)) if *row == r => values.push((c, text)),
            _ => {
                if let Some((row, values)) = current.take() {
                    finish(row, values, &mut positions)?;
                }
                current = Some((r, vec![(c, text)]));
            }
        }
    }
    if let Some((row, values)) = current.take() {
        finish(row, values, &mut positions)?;
    }
    if positions.is_none() {
        return Err("未找到表头（应含“姓名”“公民身份证号”等列，请使用系统提供的模板）".to_string());
    }
    Ok(Sheet { rows })
}

/// The text of a cell: numbers without a trailing `.0`, dates as YYYY-MM-DD.
fn text_of(v: &DataRef<'_>) -> String {
    match v {
        DataRef::String(s) | DataRef::DateTimeIso(s) | DataRef::DurationIso(s) => s.clone(),
        DataRef::SharedString(s) => s.to_string(),
        DataRef::Int(i) => i.to_string(),
        DataRef::Float(f) => {
            if f.fract() == 0.0 && f.abs() < 1e15 {
                format!("{}", *f as i64)
            } else {
                f.to_string()
            }
        }
        DataRef::Bool(b) => if *b { "是" } else { "否" }.to_string(),
        DataRef::DateTime(d) => d
            .as_datetime()
            .map(|d| d.date().format("%Y-%m-%d").to_string())
            .unwrap_or_default(),
        DataRef::Error(_) | DataRef::Empty => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book(rows: &[&[&str]]) -> Vec<u8> {
        let mut b = rust_xlsxwriter::Workbook::new();
        let s = b.add_worksheet();
        for (r, row) in rows.iter().enumerate() {
            for (c, v) in row.iter().enumerate() {
                if !v.is_empty() {
                    s.write_string(r as u32, c as u16, *v).unwrap();
                }
            }
        }
        s.write_number(2, 4, 13800000000.0).unwrap();
        b.save_to_buffer().unwrap()
    }

    #[test]
    fn rows_follow_the_heading_in_any_column_order() {
        let labels: Vec<&str> = COLUMNS.iter().rev().map(|c| c.label).collect();
        let mut heading: Vec<&str> = vec!["备注"];
        heading.extend(labels);
        let bytes = book(&[
            &heading,
            &[],
            &[
                "x", "", "", "", "", "", "", "", "", "", "", "", "", "", "", "", "", "张三",
            ],
        ]);
        let sheet = read(&bytes).unwrap();
        assert_eq!(sheet.rows.len(), 1);
        assert_eq!(sheet.rows[0].row, 3);
        assert_eq!(sheet.rows[0].get("org_code"), "张三");
        // Column 4 is 注册手机号 here (reversed order after 备注): a number without ".0".
        assert_eq!(sheet.rows[0].get("registered_phone"), "13800000000");
    }

    #[test]
    fn missing_required_columns_are_named() {
        let e = read(&book(&[&["姓名", "公民身份证号"]])).unwrap_err();
        assert!(e.contains("党组织代码"), "{e}");
        assert!(read(b"not a zip").is_err());
    }
}
