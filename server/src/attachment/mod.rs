//! Attachments (in progress).
