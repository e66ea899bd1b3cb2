//! Prints its arguments and its whole environment, then exits with the code
//! given as `--exit N` (default 0): proves args, env and exit codes pass
//! through exactly, and that nothing else leaks in.
fn main() {
    let args: Vec<String> = std::env::args().collect();
    for (i, arg) in args.iter().enumerate() {
        println!("arg[{i}]={arg}");
    }
    let mut vars: Vec<(String, String)> = std::env::vars().collect();
    vars.sort();
    println!("env-count={}", vars.len());
    for (key, value) in vars {
        println!("env:{key}={value}");
    }
    let code = args
        .windows(2)
        .find(|pair| pair[0] == "--exit")
        .map(|pair| pair[1].parse::<i32>().expect("--exit takes a number"))
        .unwrap_or(0);
    std::process::exit(code);
}
