use super::*;
use raft::Storage as _;

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        data: format!("e{index}").into_bytes().into(),
        ..Default::default()
    }
}

fn hs(term: u64, commit: u64) -> HardState {
    HardState {
        term,
        commit,
        vote: 3,
        ..Default::default()
    }
}

fn ctx() -> GetEntriesContext {
    GetEntriesContext::empty(false)
}

fn open(dir: &Path) -> LogStore {
    match LogStore::open(dir) {
        Ok(s) => s,
        Err(e) => panic!("open {}: {e}", dir.display()),
    }
}

#[test]
fn persists_and_reads_back_after_reopen() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    {
        let mut s = open(dir.path());
        assert!(!s.is_initialized());
        s.bootstrap(vec![1, 2, 3])?;
        let ents: Vec<Entry> = (1..=5).map(|i| entry(i, 1)).collect();
        s.append(&ents, Some(&hs(1, 3)), true)?;
    }
    let s = open(dir.path());
    assert!(s.is_initialized());
    let st = s.initial_state()?;
    assert_eq!(st.hard_state, hs(1, 3));
    assert_eq!(st.conf_state.voters, vec![1, 2, 3]);
    assert_eq!((s.first_index()?, s.last_index()?), (1, 5));
    let got = s.entries(2, 5, None, ctx())?;
    assert_eq!(got, (2..5).map(|i| entry(i, 1)).collect::<Vec<_>>());
    assert_eq!(s.term(4)?, 1);
    assert_eq!(s.term(0)?, 0);
    assert!(s.term(6).is_err());
    Ok(())
}

#[test]
fn conflicting_append_replaces_the_tail() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let mut s = open(dir.path());
    s.append(
        &(1..=5).map(|i| entry(i, 1)).collect::<Vec<_>>(),
        None,
        true,
    )?;
    s.append(&[entry(3, 2)], None, true)?;
    assert_eq!(s.last_index()?, 3);
    assert_eq!(s.term(3)?, 2);
    drop(s);
    let s = open(dir.path());
    assert_eq!((s.last_index()?, s.term(3)?), (3, 2));
    Ok(())
}

fn snapshot(index: u64, term: u64, voters: Vec<u64>) -> Snapshot {
    let mut snap = Snapshot {
        data: b"state".to_vec().into(),
        ..Default::default()
    };
    let meta = snap.mut_metadata();
    meta.index = index;
    meta.term = term;
    meta.mut_conf_state().voters = voters;
    snap
}

#[test]
fn saved_snapshot_compacts_and_survives_reopen() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    {
        let mut s = open(dir.path());
        s.bootstrap(vec![1])?;
        s.append(
            &(1..=10).map(|i| entry(i, 2)).collect::<Vec<_>>(),
            Some(&hs(2, 10)),
            true,
        )?;
        s.save_snapshot(&snapshot(6, 2, vec![1, 2]))?;
        assert_eq!((s.first_index()?, s.last_index()?), (7, 10));
        assert!(matches!(
            s.entries(5, 8, None, ctx()),
            Err(raft::Error::Store(raft::StorageError::Compacted))
        ));
    }
    let s = open(dir.path());
    assert_eq!((s.first_index()?, s.last_index()?), (7, 10));
    assert_eq!(s.term(6)?, 2);
    assert!(s.term(5).is_err());
    assert_eq!(s.snapshot(0, 2)?.get_metadata().index, 6);
    assert_eq!(s.initial_state()?.conf_state.voters, vec![1, 2]);
    assert_eq!(s.entries(7, 11, None, ctx())?.len(), 4);
    Ok(())
}

#[test]
fn received_snapshot_drops_the_whole_log() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    {
        let mut s = open(dir.path());
        s.append(
            &(1..=10).map(|i| entry(i, 1)).collect::<Vec<_>>(),
            Some(&hs(1, 2)),
            true,
        )?;
        s.apply_snapshot(&snapshot(8, 3, vec![1, 2, 3]), None)?;
        assert_eq!((s.first_index()?, s.last_index()?), (9, 8));
        assert_eq!(s.hard_state().commit, 8);
        // The leader then appends after the snapshot.
        s.append(&[entry(9, 3)], None, true)?;
        assert_eq!(s.last_index()?, 9);
    }
    let s = open(dir.path());
    assert_eq!(
        (s.first_index()?, s.last_index()?, s.term(9)?, s.term(8)?),
        (9, 9, 3, 3)
    );
    assert_eq!(s.hard_state().term, 3);
    Ok(())
}

#[test]
fn empty_store_has_no_snapshot_to_send() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let s = open(dir.path());
    assert!(matches!(
        s.snapshot(0, 2),
        Err(raft::Error::Store(
            raft::StorageError::SnapshotTemporarilyUnavailable
        ))
    ));
    assert_eq!((s.first_index()?, s.last_index()?), (1, 0));
    Ok(())
}

#[test]
fn messages_round_trip_through_the_wire_codec() -> Result<(), Box<dyn std::error::Error>> {
    let mut m = raft::eraftpb::Message::default();
    m.set_msg_type(raft::eraftpb::MessageType::MsgAppend);
    m.to = 2;
    m.entries = vec![entry(4, 2)].into();
    let back = decode_message(&encode_message(&m)?)?;
    assert_eq!(back, m);
    Ok(())
}
