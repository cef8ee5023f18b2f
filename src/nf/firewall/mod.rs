//! `firewall` (in progress).
use super::{Function, NfError, Output};
use crate::buf::Frame;
use crate::transport::Spec;

pub struct Firewall;

impl Firewall {
    pub fn new(_specs: &[Spec], _options: &[(String, String)]) -> Result<Firewall, NfError> {
        Err(NfError::Unknown("firewall".into()))
    }
}

impl Function for Firewall {
    fn name(&self) -> &'static str {
        "firewall"
    }
    fn process(&mut self, _port: usize, _frames: &[Frame], _out: &mut dyn Output) {}
}
