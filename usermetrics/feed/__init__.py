"""The live feed (async producer over sync frames): frames within a byte budget, and the producer that sends them."""
