fn main() {
    std::process::exit(vecbox::cli::main());
}
