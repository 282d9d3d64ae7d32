//! One conformance suite for every backend: the behaviour the API owes Multiomix (start
//! with the exact fields, describe, states to final, cancel and its 409, 404, list and
//! filter, one job per repeated key, a start whose record was lost found by its client
//! token, the notice after the end), written once in [`cases`] and run against each peer
//! in [`peers`]. What a peer cannot show is said where it is described, and covered by a
//! fake that can (for Livy, which has no peer nobody here wrote, what its fake cannot
//! show is listed at `peers::FakeLivyPeer`).

pub mod cases;
pub mod harness;
pub mod peers;

mod fake_emr_eks {
    crate::conformance!(crate::conformance::peers::fake_eks());
}

mod moto_emr_eks {
    crate::conformance!(crate::conformance::peers::moto_eks());
}

mod local {
    crate::conformance!(crate::conformance::peers::local());
}

mod fake_emr_serverless {
    crate::conformance!(crate::conformance::peers::fake_serverless());
}

mod moto_emr_serverless {
    crate::conformance!(crate::conformance::peers::moto_serverless());
}

mod fake_emr_ec2 {
    crate::conformance!(crate::conformance::peers::fake_ec2());
}

mod fake_livy {
    crate::conformance!(crate::conformance::peers::fake_livy());
}
