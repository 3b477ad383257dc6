import FloodgateAgent
import Foundation
import Testing

/// The shipped Prometheus alerting rules (`floodgate config alerts`): promtool accepts them, and its unit tests
/// show each tested alert firing on the series the agent exports, and staying quiet before.
@Suite struct AlertRulesTests {
    static let unitTests = """
        rule_files: [alerts.yml]
        evaluation_interval: 30s
        tests:
          - interval: 30s
            input_series:
              - series: 'floodgate_agent_last_poll_timestamp_seconds{instance="r1"}'
                values: '0x10 stale'
              - series: 'floodgate_config_reloads_total{instance="r1",result="rejected"}'
                values: '0 0 1 1 1 1'
              - series: 'floodgate_fraud_blocks_total{instance="r1",interface="fg0",kind="high-risk"}'
                values: '0 0 0 1 1 1'
              - series: 'floodgate_fraud_blocks_total{instance="r1",interface="fg0",kind="international"}'
                values: '0 0 0 0 0 0'
              - series: 'floodgate_packets_total{instance="r1",interface="fg0",class="invite",verdict="dropped-prefix"}'
                values: '0+500000x20'
              - series: 'floodgate_packets_total{instance="r1",interface="fg0",class="register",verdict="passed"}'
                values: '0+50x20'
              - series: 'floodgate_tracked_sources{instance="r1",interface="fg0"}'
                values: '10x20'
              - series: 'floodgate_tracked_sources_capacity{instance="r1",interface="fg0"}'
                values: '1000x20'
              - series: 'floodgate_attach_info{instance="r1",interface="fg0",mode="native",program="7"}'
                values: '1x20'
              - series: 'floodgate_attach_info{instance="r1",interface="fg1",mode="generic",program="7"}'
                values: '1x20'
              - series: 'floodgate_bans_active{instance="r1",interface="fg0",origin="explicit"}'
                values: '1000 200000x19'
              - series: 'floodgate_bans_active{instance="r1",interface="fg0",origin="integration"}'
                values: '0 40000x19'
              - series: 'floodgate_bans_active{instance="r1",interface="fg0",origin="auto"}'
                values: '250000x20'
              - series: 'floodgate_bgp_daemon_up{instance="r1"}'
                values: '1 1 0x18'
              - series: 'floodgate_bgp_routes_over_cap{instance="r1"}'
                values: '0 739x30'
            alert_rule_test:
              - eval_time: 30s
                alertname: FloodgateAgentStale
                exp_alerts: []
              - eval_time: 3m
                alertname: FloodgateAgentStale
                exp_alerts:
                  - exp_labels: {severity: critical, instance: r1}
                    exp_annotations:
                      summary: "Floodgate's agent has not read its maps for 3m 0s"
                      description: "The XDP filter keeps filtering, but bans expire unseen, events are lost and config reloads are not applied."
              - eval_time: 30s
                alertname: FloodgateConfigReloadRejected
                exp_alerts: []
              - eval_time: 2m
                alertname: FloodgateConfigReloadRejected
                exp_alerts:
                  - exp_labels: {severity: warning, instance: r1, result: rejected}
                    exp_annotations:
                      summary: "A Floodgate config reload was rejected"
                      description: "The filter runs on the previous config. journalctl -u floodgate names the file, line and field."
              - eval_time: 2m
                alertname: FloodgateFraudBlock
                exp_alerts:
                  - exp_labels: {severity: critical, instance: r1, interface: fg0, kind: high-risk}
                    exp_annotations:
                      summary: "Floodgate blocked a source for new calls (high-risk)"
                      description: "A source crossed a fraud threshold: floodgate calls lists it; floodgate calls unblock ADDR lifts the block."
              - eval_time: 8m
                alertname: FloodgateDropRateHigh
                exp_alerts:
                  - exp_labels: {severity: warning, instance: r1, interface: fg0}
                    exp_annotations:
                      summary: "Floodgate on fg0 drops 16.67k packets/s: a flood"
                      description: "More than half of what arrives is dropped, over 10,000 packets a second. floodgate top shows the sources."
              - eval_time: 30s
                alertname: FloodgateAgentStale
                exp_alerts: []
              - eval_time: 8m
                alertname: FloodgateAgentStale
                exp_alerts:
                  - exp_labels: {severity: critical, instance: r1}
                    exp_annotations:
                      summary: "Floodgate's agent has not read its maps for 8m 0s"
                      description: "The XDP filter keeps filtering, but bans expire unseen, events are lost and config reloads are not applied."
              - eval_time: 1m
                alertname: FloodgateNotNativeXDP
                exp_alerts:
                  - exp_labels: {severity: warning, instance: r1, interface: fg1, mode: generic, program: "7"}
                    exp_annotations:
                      summary: "Floodgate on fg1 runs in generic XDP mode"
                      description: "The driver refused native XDP (interfaces.mode: auto fell back to generic): packets are filtered after the kernel has allocated them, at a fraction of the native rate."
              - eval_time: 0m
                alertname: FloodgateBanMapNearFull
                exp_alerts: []
              - eval_time: 1m
                alertname: FloodgateBanMapNearFull
                exp_alerts:
                  - exp_labels: {severity: warning, instance: r1, interface: fg0}
                    exp_annotations:
                      summary: "Floodgate on fg0 holds 240k explicit bans, near the map's 262,144"
                      description: "Once it is full, new bans by the operator and by integrations fail (the filter's own bans are an LRU). Lift stale ones, or move ranges to a deny list."
              - eval_time: 2m
                alertname: FloodgateBGPDaemonDown
                exp_alerts: []
              - eval_time: 3m
                alertname: FloodgateBGPDaemonDown
                exp_alerts:
                  - exp_labels: {severity: warning, instance: r1}
                    exp_annotations:
                      summary: "Floodgate cannot reach its BGP daemon"
                      description: "Bans are kept and enforced here, but not announced upstream nor shared with the other routers; they are announced once gobgpd answers again (floodgate bgp status)."
              - eval_time: 11m
                alertname: FloodgateBGPRoutesOverCap
                exp_alerts:
                  - exp_labels: {severity: info, instance: r1}
                    exp_annotations:
                      summary: "739 bans are not announced: over bgp.max_routes"
                      description: "They are enforced on this router only. Raise max_routes within the upstream's FlowSpec budget, or let aggregation take them (bgp.aggregate)."
              - eval_time: 5m
                alertname: FloodgateNewSourcesRefused
                exp_alerts: []

        """

    @Test func promtoolAcceptsTheRulesAndTheyFireAsTested() throws {
        try requireTool("/usr/bin/promtool", package: "prometheus")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fgalerts-\(uniqueID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let printed = try run([floodgateBinary, "config", "alerts"])
        #expect(printed.status == 0 && printed.out == ShippedFiles.alertRules, "the CLI prints the shipped rules")
        try printed.out.write(to: dir.appendingPathComponent("alerts.yml"), atomically: true, encoding: .utf8)
        let check = try run(["promtool", "check", "rules", dir.appendingPathComponent("alerts.yml").path])
        #expect(check.status == 0 && check.out.contains("SUCCESS: 12 rules found"), "\(check.out)\(check.err)")

        try AlertRulesTests.unitTests.write(to: dir.appendingPathComponent("test.yml"), atomically: true, encoding: .utf8)
        let tested = try run(["sh", "-c", "cd '\(dir.path)' && promtool test rules test.yml"])
        #expect(tested.status == 0, "\(tested.out)\(tested.err)")
        // And the unit tests can fail: the source map at 10 of 1,000 is no alert, whatever the test says.
        let last = "exp_alerts: []\n"
        #expect(AlertRulesTests.unitTests.hasSuffix(last))
        let wrong = String(AlertRulesTests.unitTests.dropLast(last.count))
            + "exp_alerts: [{exp_labels: {severity: warning, instance: r1, interface: fg0}}]\n"
        try wrong.write(to: dir.appendingPathComponent("wrong.yml"), atomically: true, encoding: .utf8)
        let failed = try run(["sh", "-c", "cd '\(dir.path)' && promtool test rules wrong.yml"])
        #expect(failed.status != 0, "\(failed.out)")
    }

    /// The metric names and labels the agent declares (Sources/FloodgateAgent/Metrics.swift), read from its source.
    static func declared() throws -> (metrics: Set<String>, labels: Set<String>) {
        let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Sources/FloodgateAgent/Metrics.swift")
        let text = try String(contentsOf: file, encoding: .utf8)
        let metrics = Set(text.matches(of: #/"(floodgate_[a-z_]+)"/#).map { String($0.1) })
        let labels = Set(text.matches(of: #/\("([a-z]+)", /#).map { String($0.1) })
        return (metrics, labels.union(["instance", "job"]))
    }

    /// The shipped Grafana dashboard (`floodgate config dashboard`): JSON Grafana imports, every query parses as
    /// PromQL (promtool checks it as a recording rule), and asks only for metrics and labels the agent exports.
    @Test func theDashboardQueriesWhatTheAgentExports() throws {
        try requireTool("/usr/bin/promtool", package: "prometheus")
        let printed = try run([floodgateBinary, "config", "dashboard"])
        #expect(printed.status == 0 && printed.out == ShippedFiles.grafanaDashboard)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(printed.out.utf8)) as? [String: Any])
        #expect(json["uid"] as? String == "floodgate")
        let panels = try #require(json["panels"] as? [[String: Any]])
        let exprs = panels.flatMap { ($0["targets"] as? [[String: Any]] ?? []).compactMap { $0["expr"] as? String } }
        #expect(panels.count >= 12 && exprs.count >= panels.count, "\(panels.count) panels, \(exprs.count) queries")
        let (metrics, labels) = try AlertRulesTests.declared()
        #expect(metrics.count >= 15, "\(metrics)")
        for expr in exprs {
            for name in expr.matches(of: #/floodgate_[a-z_]+/#).map({ String($0.0) }) {
                #expect(metrics.contains(name), "\(name) in \(expr) is no metric the agent exports")
            }
            for by in expr.matches(of: #/by \(([a-z_, ]+)\)/#) {
                for label in by.1.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) {
                    #expect(labels.contains(label), "label \(label) in \(expr) is none the agent sets")
                }
            }
        }
        // PromQL syntax: the queries as recording rules ($variables as Grafana would fill them in).
        let rules = "groups:\n  - name: dashboard\n    rules:\n" + exprs.enumerated().map { i, e in
            let filled = e.replacingOccurrences(of: "$instance", with: ".*").replacingOccurrences(of: "$interface", with: ".*")
                .replacingOccurrences(of: "$__rate_interval", with: "5m")
            return "      - record: floodgate:dashboard_\(i)\n        expr: '\(filled.replacingOccurrences(of: "'", with: "''"))'\n"
        }.joined()
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("fgdash-\(uniqueID()).yml")
        try rules.write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let check = try run(["promtool", "check", "rules", file.path])
        #expect(check.status == 0, "\(check.out)\(check.err)")
        // The alert rules ask only for exported metrics too.
        for name in ShippedFiles.alertRules.matches(of: #/floodgate_[a-z_]+/#).map({ String($0.0) }) {
            #expect(metrics.contains(name), "alert rules: \(name) is no metric the agent exports")
        }
    }
}
