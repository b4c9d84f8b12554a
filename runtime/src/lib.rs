//! sculpt-runtime: reads sculpt's compact binary format (`.scb`) and runs inference without allocation.
#![no_std]
