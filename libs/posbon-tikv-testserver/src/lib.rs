//! A PD + TiKV gRPC test server for the raw API of tikv-client, over an in-memory ordered map
