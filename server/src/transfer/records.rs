//! Records 查看转接情况: search, export, the inbox lists and monitoring.
