// A libdnn.so that lacks almost every symbol: the engine must report EngineUnavailable
// naming the first one it needs.
extern "C" const char* hbDNNGetVersion() { return "0.0.0 (broken test double)"; }
