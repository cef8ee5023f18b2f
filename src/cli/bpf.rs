//! `vecbox bpf`: assemble, disassemble, check and try out classic BPF filters.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};

use crate::filter::{self, Meta, Program, insn};

pub const HELP: &str = "\
Classic BPF filters for the bpffile= option of vecbox and UML interfaces.

Input files may be in any of these forms (detected automatically):
  UML binary   struct sock_filter records in host byte order (what bpffile= reads)
  tcpdump -dd  { 0x28, 0, 0, 0x0000000c },           (one per line)
  tcpdump -ddd the count, then `40 0 0 12` per line
  bpf_asm out  4,40 0 0 12,21 0 1 34525,6 0 0 0,6 0 0 262144
  bpf_asm src  ldh [12] / jeq #0x86dd, drop, pass / drop: ret #0 / pass: ret #-1

Every program is checked as the kernel checks it (1..4096 instructions, known opcodes,
forward jumps inside the program, a return at the end, M[] written before read); errors
name the instruction index. Examples ship in bpf/ (source .bpf and compiled .bin).

Examples:
  tcpdump -ddd -y EN10MB 'not ip6' > f.ddd && vecbox bpf asm f.ddd -o f.bin
  vecbox bpf asm bpf/drop-ipv6.bpf -o drop-ipv6.bin
  vecbox bpf dump drop-ipv6.bin
  vecbox bpf test drop-ipv6.bin --pcap capture.pcap
  vecbox guest xconnect vec0:transport=raw,ifname=p0,bpffile=drop-ipv6.bin vec1:...";

#[derive(Args, Debug)]
pub struct BpfArgs {
    #[command(subcommand)]
    cmd: BpfCmd,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Form {
    /// UML's binary bpffile= form (host byte order).
    Bin,
    /// bpf_asm source with labels.
    Asm,
    /// tcpdump -dd (C initialisers).
    Dd,
    /// tcpdump -ddd (decimal, count first).
    Ddd,
    /// bpf_asm output: N,code jt jf k,...
    Comma,
}

#[derive(Subcommand, Debug)]
enum BpfCmd {
    /// Assemble a text filter (any form) into UML's binary bpffile= form.
    Asm {
        /// Input file (bpf_asm source, tcpdump -dd/-ddd, or bpf_asm output).
        input: PathBuf,
        /// Output file.
        #[arg(short, long)]
        output: PathBuf,
        /// Output form.
        #[arg(long, value_enum, default_value = "bin")]
        format: Form,
    },
    /// Print a filter (any form) as bpf_asm source, or in another form.
    Dump {
        file: PathBuf,
        #[arg(long, value_enum, default_value = "asm")]
        format: Form,
    },
    /// Check a filter as the kernel would; exit 0 if it would be accepted.
    Check { file: PathBuf },
    /// Run a filter over the frames of a capture (pcap or pcapng, Ethernet) and show
    /// which pass. Frames are treated as received on a packet socket (type = host).
    Test {
        file: PathBuf,
        /// The capture file.
        #[arg(long)]
        pcap: PathBuf,
        /// Print only the summary line.
        #[arg(short, long)]
        quiet: bool,
    },
}

fn load(path: &Path) -> Result<Program, String> {
    Program::load(path).map_err(|e| e.to_string())
}

fn render(p: &Program, form: Form) -> Vec<u8> {
    let i = p.insns();
    match form {
        Form::Bin => insn::to_uml_binary(i),
        Form::Asm => insn::disassemble(i).into_bytes(),
        Form::Dd => insn::to_dd(i).into_bytes(),
        Form::Ddd => insn::to_ddd(i).into_bytes(),
        Form::Comma => insn::to_comma(i).into_bytes(),
    }
}

/// Run `vecbox bpf ...`; returns the exit status.
pub fn run(a: &BpfArgs) -> i32 {
    match exec(a) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vecbox: error: {e}");
            2
        }
    }
}

fn exec(a: &BpfArgs) -> Result<i32, String> {
    match &a.cmd {
        BpfCmd::Asm {
            input,
            output,
            format,
        } => {
            let p = load(input)?;
            std::fs::write(output, render(&p, *format))
                .map_err(|e| format!("writing {}: {e}", output.display()))?;
            eprintln!(
                "{}: {} instructions written to {}",
                input.display(),
                p.insns().len(),
                output.display()
            );
            Ok(0)
        }
        BpfCmd::Dump { file, format } => {
            let p = load(file)?;
            use std::io::Write;
            std::io::stdout()
                .write_all(&render(&p, *format))
                .map_err(|e| e.to_string())?;
            Ok(0)
        }
        BpfCmd::Check { file } => {
            let p = load(file)?;
            println!(
                "{}: OK, {} instructions; the kernel would accept it",
                file.display(),
                p.insns().len()
            );
            Ok(0)
        }
        BpfCmd::Test { file, pcap, quiet } => {
            let p = load(file)?;
            let data =
                std::fs::read(pcap).map_err(|e| format!("reading {}: {e}", pcap.display()))?;
            let frames =
                filter::pcap::frames(&data).map_err(|e| format!("{}: {e}", pcap.display()))?;
            let mut passed = 0;
            for (n, f) in frames.iter().enumerate() {
                let v = p.run(f, &Meta::ethernet(f, filter::interp::PACKET_HOST));
                if v > 0 {
                    passed += 1;
                }
                if !quiet {
                    let verdict = if v == 0 {
                        "drop".to_string()
                    } else if (v as usize) < f.len() {
                        format!("pass (truncated to {v} bytes)")
                    } else {
                        "pass".to_string()
                    };
                    println!("frame {}: {} bytes: {verdict}", n + 1, f.len());
                }
            }
            println!("{passed} of {} frames pass", frames.len());
            Ok(0)
        }
    }
}
