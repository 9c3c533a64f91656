"""Floor 3: where events come from: file readers, the synthetic generator, time-ordered replay."""
