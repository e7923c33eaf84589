//! The generated walpb/snappb/etcdserverpb proto2 types encode exactly the
//! bytes etcd 3.4's gogo marshalers write: non-nullable fields always, even at
//! zero; nullable `data` only when non-nil.

use glassd::pb::etcdserverpb::Metadata;
use glassd::pb::{snappb, walpb};
use prost::Message;

#[test]
fn record_with_zero_crc_and_no_data() {
    let r = walpb::Record {
        r#type: 1,
        crc: 0,
        data: None,
    };
    assert_eq!(r.encode_to_vec(), [0x08, 0x01, 0x10, 0x00]);
}

#[test]
fn crc_record_as_etcd_writes_it() {
    // crcType (4) carrying the previous file's running CRC, no data.
    let r = walpb::Record {
        r#type: 4,
        crc: 0xdead_beef,
        data: None,
    };
    assert_eq!(
        r.encode_to_vec(),
        [0x08, 0x04, 0x10, 0xef, 0xfd, 0xb6, 0xf5, 0x0d]
    );
}

#[test]
fn empty_but_present_data_is_written() {
    let r = walpb::Record {
        r#type: 2,
        crc: 5,
        data: Some(Vec::new()),
    };
    assert_eq!(r.encode_to_vec(), [0x08, 0x02, 0x10, 0x05, 0x1a, 0x00]);
    let r = walpb::Record {
        r#type: 2,
        crc: 5,
        data: Some(b"ab".to_vec()),
    };
    assert_eq!(
        r.encode_to_vec(),
        [0x08, 0x02, 0x10, 0x05, 0x1a, 0x02, b'a', b'b']
    );
}

#[test]
fn zero_snapshot_and_metadata_are_not_empty() {
    let s = walpb::Snapshot { index: 0, term: 0 };
    assert_eq!(s.encode_to_vec(), [0x08, 0x00, 0x10, 0x00]);
    let m = Metadata {
        node_id: 0,
        cluster_id: 0,
    };
    assert_eq!(m.encode_to_vec(), [0x08, 0x00, 0x10, 0x00]);
    let s = snappb::Snapshot { crc: 0, data: None };
    assert_eq!(s.encode_to_vec(), [0x08, 0x00]);
}

#[test]
fn decoding_tolerates_missing_required_fields() {
    // etcd never writes such a record, but a lenient decode is what gogo does too.
    let r = walpb::Record::decode(&[0x1a, 0x01, 0x7f][..]).expect("decode");
    assert_eq!(
        r,
        walpb::Record {
            r#type: 0,
            crc: 0,
            data: Some(vec![0x7f])
        }
    );
}
