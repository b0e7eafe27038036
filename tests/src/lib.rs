//! Test support for kubegost: the test-cluster helper (`testenv`) used by the
//! cluster tests, and small tools the tests run.

pub mod testenv;
