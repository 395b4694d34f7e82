//! The fixes of a security review (issue 21), one module per finding; each test failed on
//! the code before its fix.

mod redirect;
mod socket_rights;
