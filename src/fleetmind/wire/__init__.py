"""What every role agrees on: topics, SenML codecs, status messages and limits. Pure, no I/O."""
