// floodgate-bench: the JSON report of every section run.
import CFloodgate
import CLabLayouts
import FloodgateCore
import FloodgateLab
import Foundation

/// Writes every section's rows to `path` as JSON.
func writeJSONReport(to path: String, costs: [CostRow], accuracy: [AccuracyRow], survival: [SurvivalRow],
                     floods: [FloodRow], reactions: [ReactionRow], agentRows: [AgentMemoryRow],
                     placement: [PlacementRow], messages: [MessageRow]) throws {
    struct Report: Encodable {
        var perPacket: [CostRow]
        var rateAccuracy: [AccuracyRow]
        var randomSourceFlood: [SurvivalRow]
        var generatedFloods: [FloodRow]
        var reaction: [ReactionRow]
        var agent: [AgentMemoryRow]
        var placement: [PlacementRow]
        var messages: [MessageRow]
        enum CodingKeys: String, CodingKey {
            case reaction, agent, placement, messages
            case perPacket = "per_packet"
            case rateAccuracy = "rate_accuracy"
            case randomSourceFlood = "random_source_flood"
            case generatedFloods = "generated_floods"
        }
    }
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    try encoder.encode(
        Report(perPacket: costs, rateAccuracy: accuracy, randomSourceFlood: survival, generatedFloods: floods,
               reaction: reactions, agent: agentRows, placement: placement,
               messages: messages)
    )
    .write(to: URL(fileURLWithPath: path))
    print("\nwrote \(path)")
}
