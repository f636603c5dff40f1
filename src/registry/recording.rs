//! A channel's recordings, as Kazoo 5.x ecallmgr tracks them from the
//! `RECORD_*` call events (`kazoo-ecallmgr/src/ecallmgr_fs_recordings.erl`,
//! WIRE-5.md §3): each recording, by name, is recording, stopped, masked,
//! paused, or paused and masked.

use super::text::Text;
pub use crate::kapi::event::RecordEvent;

/// One recording's state; written as ecallmgr's atoms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordingState {
    Recording,
    Stopped,
    Masked,
    Paused,
    PausedAndMasked,
}

impl RecordingState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Recording => "recording",
            Self::Stopped => "stopped",
            Self::Masked => "masked",
            Self::Paused => "paused",
            Self::PausedAndMasked => "paused_and_masked",
        }
    }
}

/// ecallmgr's `update_state/2`: start and stop win from any state; the other
/// four move only from the states they name, and leave any other as it was
/// (so a repeated event changes nothing).
pub fn next(current: Option<RecordingState>, ev: RecordEvent) -> Option<RecordingState> {
    use RecordEvent as E;
    use RecordingState as S;
    Some(match (current, ev) {
        (_, E::Start) => S::Recording,
        (_, E::Stop) => S::Stopped,
        (Some(S::Recording), E::Mask) => S::Masked,
        (Some(S::Paused), E::Mask) => S::PausedAndMasked,
        (Some(S::Masked), E::Unmask) => S::Recording,
        (Some(S::PausedAndMasked), E::Unmask) => S::Paused,
        (Some(S::Recording), E::Pause) => S::Paused,
        (Some(S::Masked), E::Pause) => S::PausedAndMasked,
        (Some(S::Paused), E::Resume) => S::Recording,
        (Some(S::PausedAndMasked), E::Resume) => S::Masked,
        (other, _) => return other,
    })
}

/// The key of a recording: `filename:rootname/1` of its name, which drops the
/// extension of the last path segment (`/tmp/a.b/c.mp3` → `/tmp/a.b/c`).
pub fn recording_id(name: &str) -> &str {
    let base = name.rfind('/').map_or(0, |i| i + 1);
    match name[base..].rfind('.') {
        Some(dot) => &name[..base + dot],
        None => name,
    }
}

/// A channel's recordings in the order they were first seen.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Recordings(Vec<(Text, RecordingState)>);

impl Recordings {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, RecordingState)> {
        self.0.iter().map(|(k, s)| (k.as_str(), *s))
    }

    pub fn get(&self, id: &str) -> Option<RecordingState> {
        self.0.iter().find(|(k, _)| k == id).map(|(_, s)| *s)
    }

    /// Applies one event to the recording `name` refers to. Whether anything changed.
    pub fn apply(&mut self, name: &str, ev: RecordEvent) -> bool {
        let id = recording_id(name);
        let at = self.0.iter().position(|(k, _)| k == id);
        let current = at.map(|i| self.0[i].1);
        let Some(state) = next(current, ev) else {
            return false;
        };
        match at {
            Some(i) if self.0[i].1 == state => false,
            Some(i) => {
                self.0[i].1 = state;
                true
            }
            None => {
                self.0.push((Text::from(id), state));
                true
            }
        }
    }

    /// The JSON object `{"<id>": "<state>", …}`.
    /// (Rare and small: serde's escaping is fine here.)
    pub fn write(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        for (i, (id, state)) in self.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            serde_json::to_writer(&mut *out, id).expect("writing to a Vec cannot fail");
            out.extend_from_slice(b":\"");
            out.extend_from_slice(state.as_str().as_bytes());
            out.push(b'"');
        }
        out.push(b'}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RecordEvent as E;
    use RecordingState as S;

    #[test]
    fn state_table_is_ecallmgrs() {
        let cases = [
            (None, E::Start, Some(S::Recording)),
            (Some(S::Paused), E::Start, Some(S::Recording)),
            (Some(S::Masked), E::Stop, Some(S::Stopped)),
            (None, E::Stop, Some(S::Stopped)),
            (Some(S::Recording), E::Mask, Some(S::Masked)),
            (Some(S::Paused), E::Mask, Some(S::PausedAndMasked)),
            (Some(S::Masked), E::Unmask, Some(S::Recording)),
            (Some(S::PausedAndMasked), E::Unmask, Some(S::Paused)),
            (Some(S::Recording), E::Pause, Some(S::Paused)),
            (Some(S::Masked), E::Pause, Some(S::PausedAndMasked)),
            (Some(S::Paused), E::Resume, Some(S::Recording)),
            (Some(S::PausedAndMasked), E::Resume, Some(S::Masked)),
            // Anything else leaves the state as it was.
            (None, E::Pause, None),
            (Some(S::Stopped), E::Resume, Some(S::Stopped)),
            (Some(S::Paused), E::Pause, Some(S::Paused)),
            (Some(S::Masked), E::Mask, Some(S::Masked)),
        ];
        for (from, ev, to) in cases {
            assert_eq!(next(from, ev), to, "{from:?} + {ev:?}");
        }
    }

    #[test]
    fn ids_are_rootnames() {
        assert_eq!(
            recording_id("call_recording_5f3e.mp3"),
            "call_recording_5f3e"
        );
        assert_eq!(recording_id("/tmp/a.b/c.mp3"), "/tmp/a.b/c");
        assert_eq!(recording_id("/tmp/a.b/c"), "/tmp/a.b/c");
        assert_eq!(recording_id("plain"), "plain");
    }

    #[test]
    fn recordings_follow_their_events_and_write_json() {
        let mut r = Recordings::default();
        assert!(!r.apply("a.mp3", E::Pause), "nothing to pause yet");
        assert!(r.is_empty());
        assert!(r.apply("a.mp3", E::Start));
        assert!(
            !r.apply("a.mp3", E::Start),
            "a repeated event changes nothing"
        );
        assert!(r.apply("b.wav", E::Start));
        assert!(r.apply("a.mp3", E::Pause));
        assert!(r.apply("a.mp3", E::Mask));
        assert_eq!(r.get("a"), Some(S::PausedAndMasked));
        let mut out = Vec::new();
        r.write(&mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"a": "paused_and_masked", "b": "recording"})
        );
    }
}
