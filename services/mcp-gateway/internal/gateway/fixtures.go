package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// The conformance fixture profile (MCP_CONFORMANCE_FIXTURES=true, refused
// in production): the tools, resources and prompts the MCP conformance
// suite's server scenarios call (@modelcontextprotocol/conformance, the
// names and answers of its reference "everything" server), served as real
// handlers next to the registry's tools, so that `make conformance` can run
// the suite against a real fleet. Nothing here reaches capability-core.
// docs/deployment/testing.md lists the scenarios and those not passing.

// fixturePNG is a 1×1 PNG; fixtureWAV a silent 1-sample WAV.
const (
	fixturePNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
	fixtureWAV = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAIA+AAACABAAZGF0YQIAAAAAAA=="
)

// fixtureTools are the suite's tools. sessionLevel reads the logging
// level a session set (logging/setLevel, kept in its record; "" if none).
func fixtureTools(sessionLevel func(ctx context.Context, id string) (string, error)) []server.ServerTool {
	text := func(s string) *mcp.CallToolResult {
		return &mcp.CallToolResult{Content: []mcp.Content{mcp.NewTextContent(s)}}
	}
	noArgs := func(name, desc string, h server.ToolHandlerFunc) server.ServerTool {
		return server.ServerTool{Tool: mcp.NewTool(name, mcp.WithDescription(desc)), Handler: h}
	}
	// notify sends before the call's answer, on every transport
	// (notifyClient).
	notify := func(ctx context.Context, method string, params map[string]any) {
		_ = notifyClient(ctx, method, params)
	}
	// logInfo sends an info notifications/message as mcp-go's
	// SendLogMessageToClient would, filtered by the level the client asked
	// for: a stateless (2026-07-28) request's _meta logLevel (checked by
	// the tool), else the session's logging/setLevel, read from its record
	// wherever it was set. A session that never set one gets them: "If no
	// logging/setLevel request has been sent from the client, the server
	// MAY decide which messages to send automatically" (MCP 2025-11-25,
	// LoggingMessageNotification), which the conformance scenario
	// tools-call-with-logging expects; mcp-go's own filter would take
	// such a session for one at error and send none.
	logInfo := func(ctx context.Context, data string) {
		if info := server.RequestProtocolInfoFromContext(ctx); info == nil || !info.Modern {
			cs := server.ClientSessionFromContext(ctx)
			if cs == nil {
				return
			}
			level, err := sessionLevel(ctx, cs.SessionID())
			if err != nil || level != "" && !mcp.LoggingLevelInfo.ShouldSendTo(mcp.LoggingLevel(level)) {
				return
			}
		}
		notify(ctx, string(mcp.MethodNotificationMessage), map[string]any{"level": mcp.LoggingLevelInfo, "logger": "tollgate-conformance", "data": data})
	}
	pause := func(ctx context.Context) {
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
	return []server.ServerTool{
		noArgs("test_simple_text", "Tests simple text content response", func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return text("This is a simple text response for testing."), nil
		}),
		noArgs("test_image_content", "Tests image content response", func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{mcp.NewImageContent(fixturePNG, "image/png")}}, nil
		}),
		noArgs("test_audio_content", "Tests audio content response", func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{mcp.NewAudioContent(fixtureWAV, "audio/wav")}}, nil
		}),
		noArgs("test_embedded_resource", "Tests embedded resource content response", func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{mcp.NewEmbeddedResource(mcp.TextResourceContents{
				URI: "test://embedded-resource", MIMEType: "text/plain", Text: "This is an embedded resource content.",
			})}}, nil
		}),
		noArgs("test_multiple_content_types", "Tests response with multiple content types (text, image, resource)", func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{
				mcp.NewTextContent("Multiple content types test:"),
				mcp.NewImageContent(fixturePNG, "image/png"),
				mcp.NewEmbeddedResource(mcp.TextResourceContents{
					URI: "test://mixed-content-resource", MIMEType: "application/json", Text: `{"test":"data","value":123}`,
				}),
			}}, nil
		}),
		noArgs("test_tool_with_logging", "Tests tool that emits log messages during execution", func(ctx context.Context, _ mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			if info := server.RequestProtocolInfoFromContext(ctx); info != nil && info.Modern && !mcp.LoggingLevelInfo.ShouldSendTo(info.LogLevel) {
				// A stateless (2026-07-28) request asks for log messages
				// with _meta io.modelcontextprotocol/logLevel: without it
				// (or above info) none is sent (SEP-2575).
				return text("Tool with logging executed successfully"), nil
			}
			for i, msg := range []string{"Tool execution started", "Tool processing data", "Tool execution completed"} {
				if i > 0 {
					pause(ctx)
				}
				logInfo(ctx, msg)
			}
			return text("Tool with logging executed successfully"), nil
		}),
		noArgs("test_tool_with_progress", "Tests tool that reports progress notifications", func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			var token any = 0
			if t := requestProgressToken(req); t != nil {
				token = t
			}
			for i, p := range []int{0, 50, 100} {
				if i > 0 {
					pause(ctx)
				}
				notify(ctx, string(mcp.MethodNotificationProgress), map[string]any{
					"progressToken": token, "progress": p, "total": 100, "message": fmt.Sprintf("Completed step %d of 100", p)})
			}
			return text(progressTokenText(token)), nil
		}),
		noArgs("test_error_handling", "Tests error response handling", func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return mcp.NewToolResultError("This tool intentionally returns an error for testing"), nil
		}),
		{
			Tool: mcp.NewTool("test_sampling", mcp.WithDescription("Tests server-initiated sampling (LLM completion request)"),
				mcp.WithString("prompt", mcp.Required(), mcp.Description("The prompt to send to the LLM"))),
			Handler: func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
				srv := server.ServerFromContext(ctx)
				if srv == nil {
					return text("Sampling not supported or error: no server"), nil
				}
				if cs, ok := server.ClientSessionFromContext(ctx).(server.SessionWithClientInfo); ok && cs.Initialized() && cs.GetClientCapabilities().Sampling == nil {
					// A client that did not declare sampling is not asked
					// (MCP "Sampling", capabilities): through the transport
					// (a progressToken) the request waited for an answer
					// that never came, about 8 s.
					return text("Sampling not supported or error: session does not support sampling"), nil
				}
				res, err := srv.RequestSampling(ctx, mcp.CreateMessageRequest{CreateMessageParams: mcp.CreateMessageParams{
					Messages:  []mcp.SamplingMessage{{Role: mcp.RoleUser, Content: mcp.NewTextContent(req.GetString("prompt", ""))}},
					MaxTokens: 100,
				}})
				if err != nil {
					return text("Sampling not supported or error: " + err.Error()), nil
				}
				b, _ := json.Marshal(res.Content)
				return text("LLM response: " + string(b)), nil
			},
		},
		{
			Tool: mcp.NewTool("test_elicitation", mcp.WithDescription("Tests server-initiated elicitation (user input request)"),
				mcp.WithString("message", mcp.Required(), mcp.Description("The message to show the user"))),
			Handler: func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
				srv := server.ServerFromContext(ctx)
				if srv == nil {
					return text("Elicitation not supported or error: no server"), nil
				}
				res, err := srv.RequestElicitation(ctx, mcp.ElicitationRequest{Params: mcp.ElicitationParams{
					Message: req.GetString("message", ""),
					RequestedSchema: map[string]any{"type": "object", "required": []string{"response"},
						"properties": map[string]any{"response": map[string]any{"type": "string", "description": "User's response"}}},
				}})
				if err != nil {
					return text("Elicitation not supported or error: " + err.Error()), nil
				}
				b, _ := json.Marshal(res.Content)
				return text(fmt.Sprintf("User response: action=%s, content=%s", res.Action, b)), nil
			},
		},
	}
}

// fixtureResources are the suite's static resources.
func fixtureResources() []server.ServerResource {
	static := func(uri, name, title, desc, mime string, contents mcp.ResourceContents) server.ServerResource {
		return server.ServerResource{
			Resource: mcp.Resource{URI: uri, Name: name, Title: title, Description: desc, MIMEType: mime},
			Handler: func(context.Context, mcp.ReadResourceRequest) ([]mcp.ResourceContents, error) {
				return []mcp.ResourceContents{contents}, nil
			},
		}
	}
	return []server.ServerResource{
		static("test://static-text", "static-text", "Static Text Resource", "A static text resource for testing", "text/plain",
			mcp.TextResourceContents{URI: "test://static-text", MIMEType: "text/plain", Text: "This is the content of the static text resource."}),
		static("test://static-binary", "static-binary", "Static Binary Resource", "A static binary resource (image) for testing", "image/png",
			mcp.BlobResourceContents{URI: "test://static-binary", MIMEType: "image/png", Blob: fixturePNG}),
		static("test://watched-resource", "watched-resource", "Watched Resource", "A resource clients may subscribe to", "text/plain",
			mcp.TextResourceContents{URI: "test://watched-resource", MIMEType: "text/plain", Text: "Watched resource content"}),
	}
}

// fixtureTemplate is the suite's resource template test://template/{id}/data.
func fixtureTemplate() server.ServerResourceTemplate {
	return server.ServerResourceTemplate{
		Template: mcp.NewResourceTemplate("test://template/{id}/data", "template",
			mcp.WithTemplateDescription("A resource template with parameter substitution"), mcp.WithTemplateMIMEType("application/json")),
		Handler: func(_ context.Context, req mcp.ReadResourceRequest) ([]mcp.ResourceContents, error) {
			id := ""
			if v, ok := req.Params.Arguments["id"]; ok {
				switch x := v.(type) {
				case []string:
					if len(x) > 0 {
						id = x[0]
					}
				case string:
					id = x
				}
			}
			if id == "" {
				return nil, errors.New("the template needs an id")
			}
			b, _ := json.Marshal(map[string]any{"id": id, "templateTest": true, "data": "Data for ID: " + id})
			return []mcp.ResourceContents{mcp.TextResourceContents{URI: req.Params.URI, MIMEType: "application/json", Text: string(b)}}, nil
		},
	}
}

// fixturePrompts are the suite's prompts.
func fixturePrompts() []server.ServerPrompt {
	user := func(c mcp.Content) mcp.PromptMessage { return mcp.NewPromptMessage(mcp.RoleUser, c) }
	return []server.ServerPrompt{
		{
			Prompt: mcp.NewPrompt("test_simple_prompt", mcp.WithPromptDescription("A simple prompt without arguments")),
			Handler: func(context.Context, mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
				return &mcp.GetPromptResult{Messages: []mcp.PromptMessage{user(mcp.NewTextContent("This is a simple prompt for testing."))}}, nil
			},
		},
		{
			Prompt: mcp.NewPrompt("test_prompt_with_arguments", mcp.WithPromptDescription("A prompt with required arguments"),
				mcp.WithArgument("arg1", mcp.ArgumentDescription("First test argument"), mcp.RequiredArgument()),
				mcp.WithArgument("arg2", mcp.ArgumentDescription("Second test argument"), mcp.RequiredArgument())),
			Handler: func(_ context.Context, req mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
				a := req.Params.Arguments
				return &mcp.GetPromptResult{Messages: []mcp.PromptMessage{user(mcp.NewTextContent(
					fmt.Sprintf("Prompt with arguments: arg1='%s', arg2='%s'", a["arg1"], a["arg2"])))}}, nil
			},
		},
		{
			Prompt: mcp.NewPrompt("test_prompt_with_embedded_resource", mcp.WithPromptDescription("A prompt that includes an embedded resource"),
				mcp.WithArgument("resourceUri", mcp.ArgumentDescription("URI of the resource to embed"), mcp.RequiredArgument())),
			Handler: func(_ context.Context, req mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
				return &mcp.GetPromptResult{Messages: []mcp.PromptMessage{
					user(mcp.NewEmbeddedResource(mcp.TextResourceContents{URI: req.Params.Arguments["resourceUri"], MIMEType: "text/plain",
						Text: "Embedded resource content for testing."})),
					user(mcp.NewTextContent("Please process the embedded resource above.")),
				}}, nil
			},
		},
		{
			Prompt: mcp.NewPrompt("test_prompt_with_image", mcp.WithPromptDescription("A prompt that includes image content")),
			Handler: func(context.Context, mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
				return &mcp.GetPromptResult{Messages: []mcp.PromptMessage{
					user(mcp.NewImageContent(fixturePNG, "image/png")),
					user(mcp.NewTextContent("Please analyze the image above.")),
				}}, nil
			},
		},
	}
}

// addFixtures adds the profile's resources and prompts to s; its tools are
// served next to the registry's by serveTools, which replaces the tool set
// whenever the registry changes.
func addFixtures(s *server.MCPServer) {
	s.AddResources(fixtureResources()...)
	s.AddResourceTemplates(fixtureTemplate())
	s.AddPrompts(fixturePrompts()...)
}

// progressTokenText is test_tool_with_progress's result: the token it was
// given (requestProgressToken), a string's value or a number as written.
func progressTokenText(token any) string {
	switch t := token.(type) {
	case json.RawMessage:
		var s string
		if json.Unmarshal(t, &s) == nil {
			return s
		}
		return string(t)
	case string:
		return t
	case float64:
		return strconv.FormatFloat(t, 'f', -1, 64)
	}
	return fmt.Sprint(token)
}
