"""The LightningModule (`module`), its options (`options`, conf/model/) and the pieces it trains with: batch mixing
(`mixing`) and test-time views (`tta`)."""
