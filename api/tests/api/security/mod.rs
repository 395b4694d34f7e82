//! The fixes of a security review (issue 21), one module per finding; each test failed on
//! the code before its fix.

mod account_linking;
mod domain_claims;
mod expensive;
mod login_limits;
mod master_rotation;
mod minor;
mod redirect;
mod socket_limits;
mod socket_rights;
