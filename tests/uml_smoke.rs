//! A real UML guest reaches a host through a vecbox guest: UML's raw transport on one
//! veth, vecbox xconnect (raw, gro=1) in the middle, the host on the far side.

mod common;

use common::uml::Uml;
use common::{Guest, Lab, port_stat};

#[test]
fn uml_guest_pings_and_streams_through_vecbox() {
    let mut lab = Lab::new();
    let u = lab.ns("u");
    let g = lab.ns("g");
    let b = lab.ns("b");
    lab.veth(&u, "ua", &g, "ga");
    lab.veth(&b, "b0", &g, "gb");
    lab.quiet(&g, "ga");
    lab.quiet(&g, "gb");
    lab.addr(&b, "b0", "10.72.0.2/24");
    let guest = Guest::start(
        &lab,
        &g,
        "xconnect",
        &[
            "vec0:transport=raw,ifname=ga,gro=1",
            "vec1:transport=raw,ifname=gb,gro=1",
        ],
    );
    let mut uml = Uml::boot(
        &lab,
        &u,
        &["vec0:transport=raw,ifname=ua,gro=1"],
        "ip addr add 10.72.0.1/24 dev vec0\nip link set vec0 up\n\
         if ping -c 3 -W 2 10.72.0.2 >/dev/null; then echo PING-OK; else echo PING-FAIL; fi",
    );
    assert!(
        uml.log.iter().any(|l| l.contains("PING-OK")),
        "UML console:\n{}",
        uml.log.join("\n")
    );
    // The host can reach the UML guest too.
    assert!(lab.ping(&b, "10.72.0.1", 2));
    uml.stop();
    let r = guest.stop();
    assert!(port_stat(&r, 0, "rx_packets") >= 3, "{r}");
    assert!(port_stat(&r, 1, "rx_packets") >= 3, "{r}");
}
