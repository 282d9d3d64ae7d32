//! The fakes against the real clients, in one binary: the AWS SDK's emr-containers client
//! against the fake EMR ([`emr_sdk`]), real HTTP against the fake Multiomix
//! ([`multiomix`]), and both fakes as the processes CI starts ([`binaries`]).

mod binaries;
mod emr_sdk;
mod multiomix;
