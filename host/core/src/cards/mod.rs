//! Cards and tokens: devices and their state machine, enrolment requests with approvals, PIN
//! reset, and the holder's self-service.

pub mod device;
pub mod devices;
pub mod enrolment;
pub mod enrolments;
pub mod pin_reset;
pub mod self_service;
pub mod unlock;
