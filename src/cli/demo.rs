//! `acp demo`: starts the demo, then opens the console on it (or, headless, prints how to
//! connect and waits for Ctrl-C); stops everything and removes the temporary files at the end.

use acp::demo::{Demo, DemoArgs};

pub async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    let demo = Demo::start(&args).await?;
    let result = if args.headless || !cfg!(feature = "console") {
        print!("{}", demo.banner());
        super::serve::shutdown_signal().await;
        Ok(())
    } else {
        open_console(&demo).await
    };
    // Stopping lets the attempts in flight finish (up to the grace period): say so, rather
    // than leave a silent terminal for those seconds.
    eprintln!("stopping the demo: letting the runs in flight finish (at most 10 s)…");
    demo.stop().await?;
    result
}

#[cfg(feature = "console")]
async fn open_console(demo: &Demo) -> anyhow::Result<()> {
    let args = acp::console::Args {
        sandbox: Some(demo.sandbox.url.clone()),
        ..Default::default()
    };
    acp::console::run(Some(demo.server.clone()), Some(demo.token.clone()), args).await
}

#[cfg(not(feature = "console"))]
async fn open_console(_: &Demo) -> anyhow::Result<()> {
    Ok(())
}
