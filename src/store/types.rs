//! How the job model's types are kept in SQLite: a job id, a job state, a backend's
//! name and a notice's status as TEXT, checked when read back, so that the store's
//! signatures and rows carry the types and not strings.

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::sqlite::{Sqlite, SqliteArgumentValue, SqliteTypeInfo, SqliteValueRef};
use sqlx::{Decode, Encode, Type};

use crate::job::{BackendKind, JobId, JobState};

/// What the store knows of a job's end: a state the backend reported, or `UNKNOWN` when
/// the backend stopped knowing the job (no notice follows).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinalState {
    Ended(JobState),
    Unknown,
}

impl FinalState {
    pub fn as_str(self) -> &'static str {
        match self {
            FinalState::Ended(state) => state.as_str(),
            FinalState::Unknown => "UNKNOWN",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "UNKNOWN" => Some(FinalState::Unknown),
            other => JobState::parse(other).map(FinalState::Ended),
        }
    }
}

impl std::fmt::Display for FinalState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// TEXT in SQLite, written from `text` and read back through `parse`.
macro_rules! stored_as_text {
    ($type:ty, $text:expr, $parse:expr, $what:literal) => {
        impl Type<Sqlite> for $type {
            fn type_info() -> SqliteTypeInfo {
                <String as Type<Sqlite>>::type_info()
            }

            fn compatible(ty: &SqliteTypeInfo) -> bool {
                <String as Type<Sqlite>>::compatible(ty)
            }
        }

        impl<'q> Encode<'q, Sqlite> for $type {
            fn encode_by_ref(
                &self,
                buf: &mut Vec<SqliteArgumentValue<'q>>,
            ) -> Result<IsNull, BoxDynError> {
                let text: fn(&$type) -> String = $text;
                <String as Encode<'q, Sqlite>>::encode(text(self), buf)
            }
        }

        impl<'r> Decode<'r, Sqlite> for $type {
            fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
                let raw = <&str as Decode<'r, Sqlite>>::decode(value)?;
                let parse: fn(&str) -> Option<$type> = $parse;
                parse(raw).ok_or_else(|| format!("{raw:?} is not {}", $what).into())
            }
        }
    };
}

stored_as_text!(JobId, |id| id.as_str().to_owned(), JobId::parse, "a job id");
stored_as_text!(
    JobState,
    |state| state.as_str().to_owned(),
    JobState::parse,
    "a job state"
);
stored_as_text!(
    BackendKind,
    |kind| kind.as_str().to_owned(),
    BackendKind::from_name,
    "the name of a backend"
);
stored_as_text!(
    super::NoticeStatus,
    |status| status.as_str().to_owned(),
    super::NoticeStatus::parse,
    "a notice status"
);
stored_as_text!(
    FinalState,
    |state| state.as_str().to_owned(),
    FinalState::parse,
    "a final state"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_final_state_reads_back_as_itself() {
        for state in JobState::ALL {
            let f = FinalState::Ended(state);
            assert_eq!(FinalState::parse(f.as_str()), Some(f));
        }
        assert_eq!(FinalState::parse("UNKNOWN"), Some(FinalState::Unknown));
        assert_eq!(FinalState::parse("DONE"), None);
    }
}
