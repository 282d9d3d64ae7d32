//! The three EMR backends, side by side: EMR on EKS ([`eks`]), EMR Serverless
//! ([`serverless`]) and steps on an EMR cluster on EC2 ([`ec2`]), and what they share: the
//! AWS SDK set-up and the sorting of SDK errors ([`aws`]).

pub mod aws;
pub mod ec2;
pub mod eks;
pub mod serverless;
