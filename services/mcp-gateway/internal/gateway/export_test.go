package gateway

// ViaHandleMessage sends every tools/call through mcp-go's HandleMessage
// (on) or lets callTool answer the ones it serves (off, the default), and
// returns a function that restores the previous setting.
func ViaHandleMessage(on bool) (restore func()) {
	prev := viaHandleMessage.Swap(on)
	return func() { viaHandleMessage.Store(prev) }
}

// CallToolAnswers is how many tools/call requests callTool has answered.
func CallToolAnswers() uint64 { return callToolAnswers.Load() }
